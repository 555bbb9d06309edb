using Dsvm.Testing;

namespace Dsvm.Faults.Tests;

/// <summary>
/// Issue 12, engine faults under the hub: the real hub process on an engine of the test's own
/// (<see cref="FaultEngine"/>) that is stopped under a running workspace and in the middle of a start the hub is
/// making. The hub keeps serving (lists from its records, answers an operation that needs the engine with one line
/// naming the problem, never a 500 or a stack trace); once the engine is back, the hub's state follows what the
/// engine says and the workspace starts, stops and is removed through the hub again, its home kept.
/// </summary>
[Trait("Requires", "Docker")]
[Collection(FaultEngineCollection.Name)]
public sealed class HubOnFaultEngineTests : IAsyncLifetime
{
    private readonly FaultEngine _engine;
    private readonly FaultWorkspace _ws;
    private readonly HubProcess _hub;

    public HubOnFaultEngineTests(FaultEngine engine)
    {
        _engine = engine;
        _ws = new FaultWorkspace("hubeng", FaultEngine.Socket);
        _hub = new HubProcess(_ws);
    }

    private string Pause => Path.Combine(_ws.Home, "paused");

    public Task InitializeAsync() => FaultEngine.PrepareHomeAsync(_ws.Home);

    public async Task DisposeAsync()
    {
        File.Delete(Pause);
        _hub.Stop();
        await _engine.StartAsync();
        await _ws.CleanUpAsync();
    }

    private Task StartHubAsync(string? fault = null) => _hub.StartAsync(fault, new Dictionary<string, string>
    {
        ["DOCKER_HOST"] = FaultEngine.Socket,
        ["DSVM_BACKENDS"] = Path.Combine(_ws.Home, "backends.yaml"),
        ["DSVM_FAULT_PAUSE"] = Pause,
    });

    private Task<Result> UpAsync() => _hub.DsvmAsync(null, "up", "--env", "minimal", "--name", _ws.Name, "--size", "small", "-o", "json");

    /// <summary>The hub's state once it has settled with the engine back (no pending, starting or stopping).</summary>
    private async Task<string?> SettledStateAsync()
    {
        string? state = null;
        for (var i = 0; i < 120; i++)
        {
            state = await _hub.StateAsync();
            if (state is not "pending" and not "starting" and not "stopping")
            {
                return state;
            }

            await Task.Delay(1000);
        }

        return state;
    }

    private async Task AssertUsableAgainAsync()
    {
        await _hub.OkAsync("start", _ws.Name);
        Assert.Equal("running", await SettledStateAsync());
        Assert.Equal(1, (await _ws.ContainersAsync()).Running);
        await _hub.OkAsync("stop", _ws.Name);
        Assert.Equal("stopped", await SettledStateAsync());
        await _hub.OkAsync("rm", _ws.Name);
        Assert.Null(await _hub.StateAsync());
        Assert.Equal((0, 0), await _ws.ContainersAsync());
        await _ws.AssertHomeKeptAsync();
    }

    /// <summary>One line, not a stack trace, saying the engine is not reachable.</summary>
    private static void AssertEngineDown(Result r, string what)
    {
        Assert.True(r.ExitCode != 0, $"{what} with the engine down succeeded: {r}");
        Assert.DoesNotContain("   at ", r.All, StringComparison.Ordinal);
        Assert.DoesNotContain("Exception", r.All, StringComparison.Ordinal);
        Assert.DoesNotContain("500", r.All, StringComparison.Ordinal);
        Assert.Contains("engine is not reachable", r.All, StringComparison.Ordinal);
    }

    [DockerFact]
    public async Task Engine_down_under_the_hub_is_answered_clearly_and_the_hub_follows_the_engine_when_back()
    {
        await StartHubAsync();
        await _hub.LoginAsync();
        var up = await UpAsync();
        Assert.True(up.ExitCode == 0, $"up: {up}");
        Assert.Equal("running", await _hub.StateAsync());

        await _engine.StopAsync();
        // Lists come from the hub's records: still answered.
        var ls = await _hub.OkAsync("ls", "-o", "json");
        Assert.Contains(_ws.Name, ls.Stdout, StringComparison.Ordinal);
        AssertEngineDown(await _hub.DsvmAsync(null, "stop", _ws.Name), "stop");
        Assert.False(_hub.Process.HasExited, "the hub exited with the engine down");

        await _engine.StartAsync();
        // Whatever the engine did with the container meanwhile, the hub says so once it looks again.
        Assert.True(await SettledStateAsync() is "running" or "stopped" or "failed");
        await _ws.AssertHomeKeptAsync();
        if (await _hub.StateAsync() == "running")
        {
            await _hub.OkAsync("stop", _ws.Name);
        }

        await AssertUsableAgainAsync();
    }

    [DockerFact]
    public async Task Engine_stopped_while_the_hub_starts_a_workspace_fails_it_clearly_and_truthfully()
    {
        await StartHubAsync("start.after-handle:pause");
        await _hub.LoginAsync();
        var up = UpAsync();
        while (!File.Exists(Pause))
        {
            Assert.False(up.IsCompleted, $"up ended before the pause: {(up.IsCompleted ? await up : null)}");
            await Task.Delay(100);
        }

        await _engine.StopAsync();
        File.Delete(Pause);
        var failed = await up;
        Assert.True(failed.ExitCode != 0, $"up with the engine stopped under the hub: {failed}");
        Assert.DoesNotContain("   at ", failed.All, StringComparison.Ordinal);
        Assert.False(_hub.Process.HasExited, "the hub exited with the engine down");

        await _engine.StartAsync();
        // Restarted without the fault: no record of a server that is not there, no container the record does not know.
        _hub.Stop();
        await StartHubAsync();
        Assert.True(await SettledStateAsync() is "stopped" or "failed" or "running");
        if (await _hub.StateAsync() == "running")
        {
            await _hub.OkAsync("stop", _ws.Name);
        }

        await AssertUsableAgainAsync();
    }
}
