using Dsvm.Core;
using Dsvm.Core.Specs;
using Dsvm.Core.Workspaces;
using Dsvm.Data;
using Dsvm.Docker;
using Dsvm.Hub;
using Dsvm.Hub.Data;
using Dsvm.Hub.Services;
using Dsvm.Testing;
using Dsvm.Testing.Jupyter;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Playwright;

namespace Dsvm.EndToEnd.Tests;

/// <summary>
/// Issue 9, "what must work" 2, in Debian's Chromium: an admin deletes a user in the web UI, finds the user's homes
/// under "Orphaned homes", gives one to another user and purges the other; nothing else is deleted.
/// </summary>
[Collection("e2e")]
public sealed class OrphanedHomesBrowserTests
{
    private const string Password = "homes-test-password";

    [Fact]
    public async Task An_admin_finds_a_deleted_users_homes_gives_one_away_and_purges_the_other_in_the_web_ui()
    {
        await using var backend = new FakeJupyterBackend();
        var home = Path.Combine(TestEnvironment.Home, "homes-browser-" + Guid.NewGuid().ToString("N")[..6]);
        var paths = new DsvmPaths(Path.Combine(home, "data"), Path.Combine(home, "cache")).EnsureCreated();
        var store = new SqliteWorkspaceStore(paths.Database);
        var app = HubHost.Build(new HubOptions { Listen = "http://127.0.0.1:0", AdminPassword = Password }, new HubDependencies
        {
            Backend = backend,
            Store = store,
            Gpus = new NvidiaGpuDetector(),
            Environments = new StaticEnvironmentCatalog([new HubEnvironment("minimal", "dsvm/minimal:test", GpuMode.None, "test", 0)]),
            Paths = paths,
        }, logging: _ => { });
        await HubHost.InitializeAsync(app, default);
        await app.StartAsync();
        try
        {
            var hub = app.Urls.First();
            var accounts = app.Services.GetRequiredService<Accounts>();
            var workspaces = app.Services.GetRequiredService<HubWorkspaces>();
            var alice = await accounts.CreateUserAsync("alice", Password, isAdmin: false, group: null, default);
            var bob = await accounts.CreateUserAsync("bob", Password, isAdmin: false, group: null, default);
            foreach (var name in new[] { "keep", "drop" })
            {
                await workspaces.BeginStartAsync(alice, name, "minimal", "small", default);
                await workspaces.WaitAsync("alice", name);
            }

            var homes = (await store.ListHomesAsync(alice.Id, default)).ToDictionary(h => h.Name, h => h.Id);

            await using var chromium = await Chromium.LaunchAsync();
            var browser = chromium.Browser;
            var page = await (await browser.NewContextAsync()).NewPageAsync();
            // confirm() and prompt() answers, in the order the UI asks.
            var answers = new Queue<string>();
            page.Dialog += async (_, d) => await d.AcceptAsync(answers.Count > 0 ? answers.Dequeue() : null);
            await Chromium.LogInAsync(page, hub, "admin", Password);
            await page.Locator("#homes-empty").WaitForAsync(new LocatorWaitForOptions { State = WaitForSelectorState.Attached });
            Assert.Equal(0, await page.Locator("#homes tbody tr").CountAsync());

            // Delete alice in the UI: her workspaces go, her homes stay, orphaned.
            answers.Enqueue("");
            await page.Locator("#users tr", new PageLocatorOptions { HasText = "alice" }).GetByRole(AriaRole.Button, new LocatorGetByRoleOptions { Name = "Delete" }).ClickAsync();
            var keepRow = page.Locator($"#homes tr[data-id={homes["keep"]}]");
            var dropRow = page.Locator($"#homes tr[data-id={homes["drop"]}]");
            await keepRow.WaitForAsync();
            await dropRow.WaitForAsync();
            Assert.Contains("alice", await keepRow.InnerTextAsync(), StringComparison.Ordinal);
            Assert.True(await page.Locator("#homes-empty").IsHiddenAsync());
            Assert.Empty(await store.ListAsync("alice", default));

            // Give "keep" to bob as his workspace "old-keep".
            answers.Enqueue("bob");
            answers.Enqueue("old-keep");
            await keepRow.GetByRole(AriaRole.Button, new LocatorGetByRoleOptions { Name = "Give to user…" }).ClickAsync();
            await keepRow.WaitForAsync(new LocatorWaitForOptions { State = WaitForSelectorState.Detached });
            var moved = Assert.Single(await store.ListHomesAsync(bob.Id, default));
            Assert.Equal((homes["keep"], "bob", "old-keep", (DateTimeOffset?)null), (moved.Id, moved.Owner, moved.Name, moved.OrphanedAt));

            // Purge "drop": its record (and object) go; bob's home stays.
            answers.Enqueue("");
            await dropRow.GetByRole(AriaRole.Button, new LocatorGetByRoleOptions { Name = "Purge" }).ClickAsync();
            await dropRow.WaitForAsync(new LocatorWaitForOptions { State = WaitForSelectorState.Detached });
            await page.Locator("#homes-empty").WaitForAsync();
            Assert.Null(await store.GetHomeAsync(homes["drop"], default));
            Assert.NotNull(await store.GetHomeAsync(homes["keep"], default));
            Assert.True(string.IsNullOrEmpty(await page.Locator("#error").TextContentAsync()), await page.Locator("#error").TextContentAsync());
        }
        finally
        {
            await app.StopAsync();
            await app.DisposeAsync();
            Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
            Directory.Delete(home, recursive: true);
        }
    }
}
