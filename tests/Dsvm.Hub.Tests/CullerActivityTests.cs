using System.Net;
using Dsvm.Testing;
using Dsvm.Testing.Jupyter;

namespace Dsvm.Hub.Tests;

/// <summary>
/// The idle culler counts what the user did (kernel execution, terminal input, changes through the proxy), not a
/// browser tab polling api/kernels, api/sessions, api/status or api/contents (issue 12, finding 10). The Jupyter
/// servers model jupyter_server's bookkeeping (<see cref="FakeJupyterActivity"/>) on the test's clock.
/// </summary>
public sealed class CullerActivityTests : HubTestBase
{
    private const string Url = "api/v1/workspaces/alice/ws1";

    internal override HubOptions Options(HubOptions defaults) => defaults with
    {
        IdleTimeout = TimeSpan.FromMinutes(30),
        CullInterval = TimeSpan.FromMilliseconds(100),
    };

    private async Task<(HubClient Alice, FakeJupyterServer Server)> StartAsync()
    {
        World.Backend.ActivityClock = World.Time;
        var alice = await UserAsync("alice");
        await StartRunningAsync(alice.Http, "ws1");
        return (alice, World.Backend.ServerFor("alice", "ws1")!);
    }

    /// <summary>Waits until the culler has asked the server about its kernels <paramref name="passes"/> more times.</summary>
    private static async Task CullerPassesAsync(FakeJupyterServer server, int passes = 3)
    {
        static int Asked(FakeJupyterServer s) => s.Requests.Count(r => r.EndsWith("/api/kernels", StringComparison.Ordinal));
        var target = Asked(server) + passes;
        await Wait.UntilAsync(() => Task.FromResult(Asked(server) >= target), TimeSpan.FromSeconds(20),
            () => $"the culler asked about kernels {Asked(server) - target + passes} of {passes} times", default);
    }

    private static async Task<string> StateAsync(HubClient c) => (await (await c.Http.GetAsync(Url).Expect(HttpStatusCode.OK)).JsonAsync()).Str("state");

    [Fact]
    public async Task A_tab_polling_through_the_proxy_does_not_keep_the_workspace_alive()
    {
        var (alice, _) = await StartAsync();
        for (var i = 0; i < 4; i++)
        {
            foreach (var path in new[] { "api/kernels", "api/sessions", "api/status", "api/contents", "api/terminals", "api/contents/notebooks" })
            {
                await alice.Http.GetAsync($"user/alice/ws1/{path}");
            }

            World.Time.Advance(TimeSpan.FromMinutes(15));
        }

        await WaitForStateAsync(alice.Http, Url, "stopped");
    }

    [Fact]
    public async Task A_busy_kernel_is_never_culled_and_an_idle_one_is_after_the_timeout()
    {
        var (alice, server) = await StartAsync();
        server.Activity!.AddKernel("k1");
        server.Activity.SetBusy("k1", busy: true);
        World.Time.Advance(TimeSpan.FromHours(3));
        await CullerPassesAsync(server);
        Assert.Equal("running", await StateAsync(alice));

        server.Activity.SetBusy("k1", busy: false);
        World.Time.Advance(TimeSpan.FromMinutes(20));
        await CullerPassesAsync(server);
        Assert.Equal("running", await StateAsync(alice));
        World.Time.Advance(TimeSpan.FromMinutes(11));
        await WaitForStateAsync(alice.Http, Url, "stopped");
    }

    [Fact]
    public async Task Kernel_execution_terminal_input_and_saving_through_the_proxy_count_as_activity()
    {
        var (alice, server) = await StartAsync();
        server.Activity!.AddKernel("k1");

        World.Time.Advance(TimeSpan.FromMinutes(20));
        server.Activity.KernelMessage("k1"); // the user ran a cell
        // Let passes that began before the activity end before the clock jumps: one in flight across the jump would
        // judge the earlier state at the later time (the clock never jumps 20 minutes during a real pass).
        await CullerPassesAsync(server, 2);
        World.Time.Advance(TimeSpan.FromMinutes(20));
        await CullerPassesAsync(server);
        Assert.Equal("running", await StateAsync(alice));

        server.Activity.TerminalInput("1"); // typed in a terminal
        await CullerPassesAsync(server, 2);
        World.Time.Advance(TimeSpan.FromMinutes(20));
        await CullerPassesAsync(server);
        Assert.Equal("running", await StateAsync(alice));

        // Saving a file (PUT api/contents) through the proxy is an action; Jupyter's kernels would not show it.
        using (var save = new HttpRequestMessage(HttpMethod.Put, "user/alice/ws1/api/contents/notes.txt") { Content = new StringContent("{}") })
        {
            await alice.Http.SendAsync(save).Expect(HttpStatusCode.OK);
        }

        await CullerPassesAsync(server, 2);
        World.Time.Advance(TimeSpan.FromMinutes(20));
        await CullerPassesAsync(server);
        Assert.Equal("running", await StateAsync(alice));

        World.Time.Advance(TimeSpan.FromMinutes(11));
        await WaitForStateAsync(alice.Http, Url, "stopped");
    }
}
