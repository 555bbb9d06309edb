using System.Text.Json;
using Dsvm.Core;
using Dsvm.Core.Specs;
using Dsvm.Docker;
using Dsvm.Data;
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
/// Per-workspace origins in a real browser (issue 9): script that runs in alice's JupyterLab (a shared notebook's
/// output, an extension) cannot act as alice on the hub, cannot read bob's workspace and cannot plant a hub cookie that
/// matters. The hub is <c>localhost</c>, workspaces are <c>ws-….localhost</c> (Chromium resolves both to loopback): the
/// same site, the hardest case for cookies.
/// </summary>
[Collection("e2e")]
public sealed class OriginsBrowserTests
{
    private const string Password = "origins-test-password";

    /// <summary>The "notebook output": tries what an attacker's script would, and leaves its findings in window.results.</summary>
    private const string AttackerPage = """
        <!doctype html><html><head><title>lab</title></head><body><script>
        (async () => {
          const r = {};
          const probe = async (key, url, init) => {
            try { const x = await fetch(url, init); r[key] = x.type === "opaque" ? "opaque" : "status " + x.status + " " + (await x.text()).slice(0, 200); }
            catch (e) { r[key] = "blocked"; }
          };
          await probe("me", "HUB/api/v1/me", { credentials: "include" });
          await probe("token", "HUB/api/v1/tokens", { method: "POST", credentials: "include", mode: "no-cors",
            headers: { "Content-Type": "text/plain" }, body: JSON.stringify({ name: "stolen", scopes: ["workspaces"] }) });
          await probe("tokenJson", "HUB/api/v1/tokens", { method: "POST", credentials: "include",
            headers: { "Content-Type": "application/json", "X-Dsvm-Csrf": "attacker" }, body: JSON.stringify({ name: "stolen2" }) });
          await probe("bob", "BOB", { credentials: "include" });
          await probe("bobHere", "/user/bob/lab2/api/contents", { credentials: "include" });
          document.cookie = "dsvm-session=attacker; domain=localhost; path=/";
          document.cookie = "dsvm-csrf=attacker; domain=localhost; path=/";
          r.cookies = document.cookie;
          window.results = r;
          document.title = "done";
        })();
        </script></body></html>
        """;

    [Fact]
    public async Task Script_in_a_workspace_cannot_act_on_the_hub_read_another_workspace_or_plant_hub_cookies()
    {
        await using var backend = new FakeJupyterBackend();
        var home = Path.Combine(TestEnvironment.Home, "origins-browser-" + Guid.NewGuid().ToString("N")[..6]);
        var paths = new DsvmPaths(Path.Combine(home, "data"), Path.Combine(home, "cache")).EnsureCreated();
        var app = HubHost.Build(new HubOptions
        {
            Listen = "http://127.0.0.1:0", AdminPassword = Password, WorkspaceDomain = "*.localhost", PublicHost = "localhost",
        }, new HubDependencies
        {
            Backend = backend,
            Store = new SqliteWorkspaceStore(paths.Database),
            Gpus = new NvidiaGpuDetector(),
            Environments = new StaticEnvironmentCatalog([new HubEnvironment("minimal", "dsvm/minimal:test", GpuMode.None, "test", 0)]),
            Paths = paths,
        }, logging: _ => { });
        await HubHost.InitializeAsync(app, default);
        await app.StartAsync();
        try
        {
            var port = new Uri(app.Urls.First()).Port;
            var hub = $"http://localhost:{port}";
            var accounts = app.Services.GetRequiredService<Accounts>();
            var workspaces = app.Services.GetRequiredService<HubWorkspaces>();
            var alice = await accounts.CreateUserAsync("alice", Password, isAdmin: false, group: null, default);
            var bob = await accounts.CreateUserAsync("bob", Password, isAdmin: false, group: null, default);
            var bobs = await workspaces.BeginStartAsync(bob, "lab2", "minimal", "small", default);
            await workspaces.WaitAsync("bob", "lab2");
            var bobUrl = $"http://{bobs.Id}.localhost:{port}/user/bob/lab2/api/contents";
            backend.LabHtml = AttackerPage.Replace("HUB", hub, StringComparison.Ordinal).Replace("BOB", bobUrl, StringComparison.Ordinal);
            await workspaces.BeginStartAsync(alice, "lab1", "minimal", "small", default);
            await workspaces.WaitAsync("alice", "lab1");

            await using var chromium = await Chromium.LaunchAsync();
            var browser = chromium.Browser;
            var context = await browser.NewContextAsync();
            var page = await context.NewPageAsync();
            await Chromium.LogInAsync(page, hub, "alice", Password);

            // Open the workspace as a user does: the hub hands the browser to the workspace's own host.
            await page.GotoAsync($"{hub}/user/alice/lab1/lab");
            Assert.Matches(@"^http://ws-[0-9a-f]{12}\.localhost:\d+/user/alice/lab1/lab$", page.Url);
            await page.WaitForFunctionAsync("document.title === 'done'", null, new PageWaitForFunctionOptions { Timeout = 30_000 });
            var results = JsonSerializer.Deserialize<Dictionary<string, string>>(await page.EvaluateAsync<string>("JSON.stringify(window.results)"))!;

            Assert.Equal("blocked", results["me"]);          // the hub's API does not answer script on another origin
            Assert.Equal("blocked", results["tokenJson"]);   // a preflighted request never reaches the hub
            Assert.Equal("blocked", results["bob"]);         // nor does bob's workspace host
            Assert.Matches("^status 40[34] ", results["bobHere"]); // alice's host serves only her workspace, never bob's
            Assert.DoesNotContain("dsvm-ws-session", results["cookies"], StringComparison.Ordinal); // HttpOnly

            // The no-cors POST was sent blind: it must have done nothing.
            Assert.Empty(await accounts.ListTokensAsync(alice, default));

            // The planted cookies neither log alice out of the hub nor let anything through: her session still works,
            // and it is still hers.
            await page.GotoAsync($"{hub}/hub/");
            var me = await page.EvaluateAsync<string>("fetch('/api/v1/me').then(r => r.status + ' ' + r.statusText)");
            Assert.StartsWith("200", me, StringComparison.Ordinal);
            var name = await page.EvaluateAsync<string>("fetch('/api/v1/me').then(r => r.json()).then(j => j.name)");
            Assert.Equal("alice", name);
            Assert.DoesNotContain(await context.CookiesAsync([hub]), c => c.Name == "dsvm-session" && c.Value == "attacker" && c.Domain == "localhost");
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
