using Dsvm.Core;
using Dsvm.Core.Sizes;
using Dsvm.Core.Workspaces;
using Dsvm.Core.Specs;
using Dsvm.Data;
using Dsvm.Docker;
using Dsvm.Hub;
using Dsvm.Hub.Services;
using Dsvm.Testing;
using Microsoft.AspNetCore.Builder;
using Microsoft.Playwright;

namespace Dsvm.EndToEnd.Tests;

/// <summary>The hub as a person uses it, in Debian's Chromium: log in, start a workspace, open JupyterLab, run a cell.</summary>
[Trait("Requires", "Docker")]
[Collection("e2e")]
public sealed class HubBrowserTests
{
    private const string Password = "browser-test-password";

    [DockerFact]
    public async Task AUserLogsInStartsAWorkspaceOpensJupyterLabThroughTheProxyAndRunsACell()
    {
        var (_, record) = await BuiltEnvironment.GetAsync("minimal");
        var home = Path.Combine(TestEnvironment.Home, "hub-browser-" + Guid.NewGuid().ToString("N")[..6]);
        var paths = new DsvmPaths(Path.Combine(home, "data"), TestEnvironment.Paths.Cache).EnsureCreated();
        var gpus = new NvidiaGpuDetector();
        var store = new SqliteWorkspaceStore(paths.Database);
        var app = HubHost.Build(new HubOptions { Listen = "http://127.0.0.1:0", AdminPassword = Password }, new HubDependencies
        {
            Backend = new DockerWorkspaceBackend(new DockerBackendOptions(), gpus),
            Store = store,
            Gpus = gpus,
            Environments = new StaticEnvironmentCatalog([new HubEnvironment("minimal", record.Image, GpuMode.None, "Python and JupyterLab", record.SizeBytes)]),
            Paths = paths,
        }, logging: _ => { });
        await HubHost.InitializeAsync(app, default);
        await app.StartAsync();
        var hub = app.Urls.First();
        IPage? page = null;
        System.Collections.Concurrent.ConcurrentQueue<string>? failureLog = null;
        await using var chromium = await Chromium.LaunchAsync();
        var browser = chromium.Browser;
        try
        {
            var context = await browser.NewContextAsync(new BrowserNewContextOptions { ViewportSize = new ViewportSize { Width = 1280, Height = 900 } });
            page = await context.NewPageAsync();

            await page.GotoAsync($"{hub}/hub/");
            Assert.Contains("/hub/login", page.Url, StringComparison.Ordinal);
            await page.FillAsync("input[name=name]", "admin");
            await page.FillAsync("input[name=password]", Password);
            await page.ClickAsync("button[type=submit]");
            await page.WaitForURLAsync($"{hub}/hub/");
            await page.Locator("#me").Filter(new LocatorFilterOptions { HasText = "admin" }).WaitForAsync();

            await page.FillAsync("#start input[name=name]", "browser");
            await page.SelectOptionAsync("#start select[name=size]", "small");
            await page.ClickAsync("#start button[type=submit]");
            var open = page.Locator("#workspaces tr[data-name=browser] a.open");
            await open.WaitForAsync(new LocatorWaitForOptions { Timeout = 120_000 });
            Assert.Contains("ready", await page.Locator("#progress").InnerTextAsync(), StringComparison.Ordinal);

            var log = new System.Collections.Concurrent.ConcurrentQueue<string>();
            context.Console += (_, m) => log.Enqueue($"console {m.Type}: {m.Text}");
            context.Response += (_, r) => { if (r.Status >= 400) log.Enqueue($"{r.Status} {r.Url}"); };
            context.RequestFailed += (_, r) => log.Enqueue($"failed {r.Url}: {r.Failure}");
            failureLog = log;
            var lab = await context.RunAndWaitForPageAsync(() => open.ClickAsync());
            Assert.StartsWith($"{hub}/user/admin/browser/lab", lab.Url, StringComparison.Ordinal);
            await lab.Locator(".jp-LauncherCard[data-category='Notebook']").First.ClickAsync(new LocatorClickOptions { Timeout = 90_000 });
            var editor = lab.Locator(".jp-Notebook .jp-Cell .cm-content").First;
            await editor.WaitForAsync(new LocatorWaitForOptions { Timeout = 60_000 });
            // The kernel answers through the proxy's WebSocket: wait until it reports idle before running code.
            await lab.Locator("[data-status='idle']").First.WaitForAsync(new LocatorWaitForOptions { Timeout = 90_000 });
            await editor.ClickAsync();
            await lab.Keyboard.TypeAsync("print(6 * 7)");
            // Run in place (Ctrl+Enter). On a loaded machine JupyterLab can reconnect its kernel WebSocket right after
            // start and drop the first request (seen under CI load), so a request without output is sent again,
            // as a person would press run again.
            var output = lab.Locator(".jp-OutputArea-output").Filter(new LocatorFilterOptions { HasText = "42" }).First;
            for (var attempt = 1; ; attempt++)
            {
                await editor.ClickAsync();
                await lab.Keyboard.PressAsync("Control+Enter");
                try
                {
                    await output.WaitForAsync(new LocatorWaitForOptions { Timeout = 20_000 });
                    break;
                }
                catch (TimeoutException) when (attempt < 4)
                {
                }
            }

            await lab.ScreenshotAsync(new PageScreenshotOptions { Path = Path.Combine(TestEnvironment.Home, "hub-jupyterlab.png") });
        }
        catch
        {
            if (failureLog is not null)
            {
                await File.WriteAllLinesAsync(Path.Combine(TestEnvironment.Home, "hub-failure.log"), failureLog);
            }

            var i = 0;
            foreach (var p in page?.Context.Pages ?? [])
            {
                await p.ScreenshotAsync(new PageScreenshotOptions { Path = Path.Combine(TestEnvironment.Home, $"hub-failure-{i++}.png") });
            }

            throw;
        }
        finally
        {
            var manager = new WorkspaceManager(new DockerWorkspaceBackend(new DockerBackendOptions(), gpus), store,
                SizeCatalog.Load(null), gpus, new HttpReadinessProbe(), paths, TimeProvider.System);
            try
            {
                await manager.DeleteAsync("admin", "browser", deleteHome: true, null, default);
            }
            catch (NotFoundException)
            {
            }

            await app.StopAsync();
            await app.DisposeAsync();
        }
    }
}
