using Dsvm.Testing;

namespace Dsvm.Faults.Tests;

/// <summary>
/// The real <c>dsvm</c> tool on an engine of the test's own (<see cref="FaultEngine"/>) that is stopped under a
/// running workspace, in the middle of <c>up</c> and in the middle of <c>stop</c>, then started again: while it is
/// down every command is one line naming the engine with the not-ready exit code; once it is back the record follows
/// what the engine says (no running container the state calls stopped, no record claiming a server without one), the
/// home is kept and the workspace starts and stops again.
/// </summary>
[Trait("Requires", "Docker")]
[Collection(FaultEngineCollection.Name)]
public sealed class EngineStoppedTests(FaultEngine engine) : IAsyncLifetime
{
    private const int NotReady = 5;
    private const int Killed = 137;
    private readonly FaultWorkspace _ws = new("engfault", FaultEngine.Socket);

    private string Pause => Path.Combine(_ws.Home, "paused");

    public Task InitializeAsync() => FaultEngine.PrepareHomeAsync(_ws.Home);

    public async Task DisposeAsync()
    {
        File.Delete(Pause);
        // A test that failed with the engine down leaves it down: the next test (and the clean-up) needs it.
        await engine.StartAsync();
        await _ws.CleanUpAsync();
    }

    private Task<Result> DsvmAsync(string? fault, params string[] args) =>
        FaultWorkspace.RunCliAsync(e => e
            .Set("DSVM_HOME", _ws.Home)
            .Set("DOCKER_HOST", FaultEngine.Socket)
            .Set("DSVM_BACKENDS", Path.Combine(_ws.Home, "backends.yaml"))
            .Set("DSVM_HUB_URL", null)
            .Set("XDG_CONFIG_HOME", Path.Combine(_ws.Home, "config"))
            .Set("DSVM_START_TIMEOUT", "60")
            .Set("DSVM_FAULT", fault)
            .Set("DSVM_FAULT_PAUSE", Pause), null, args);

    private async Task<Result> OkAsync(params string[] args)
    {
        var r = await DsvmAsync(null, args);
        Assert.True(r.ExitCode == 0, $"dsvm {string.Join(' ', args)}: {r}");
        return r;
    }

    private Task<Result> UpAsync(string? fault = null) =>
        DsvmAsync(fault, "up", "--env", "minimal", "--name", _ws.Name, "--size", "small", "--local", "-o", "json");

    /// <summary>The state <c>dsvm ls</c> shows (null: no record), after checking the invariants against the engine.</summary>
    private Task<string?> StateAsync() => _ws.LsStateAsync(OkAsync);

    /// <summary>One line naming the fault engine and what to do, the not-ready code, no stack trace.</summary>
    private static void AssertEngineDown(Result r, string what)
    {
        Assert.True(r.ExitCode == NotReady, $"{what} with the engine down: {r}");
        Assert.DoesNotContain("   at ", r.All, StringComparison.Ordinal);
        Assert.DoesNotContain("Exception", r.All, StringComparison.Ordinal);
        var lines = r.All.Split('\n', StringSplitOptions.RemoveEmptyEntries).Where(l => !l.StartsWith("DSVM_FAULT:", StringComparison.Ordinal)).ToList();
        var line = Assert.Single(lines, l => l.StartsWith("error: ", StringComparison.Ordinal));
        Assert.Contains($"the Docker engine at {FaultEngine.Socket} is not reachable", line, StringComparison.Ordinal);
    }

    /// <summary>Runs a command that pauses at <paramref name="step"/>; stops the engine there; lets it go on.</summary>
    private async Task<Result> WithEngineStoppedAtAsync(string step, bool kill, params string[] args)
    {
        var run = DsvmAsync(step + ":pause", args);
        while (!File.Exists(Pause))
        {
            Assert.False(run.IsCompleted, $"dsvm {string.Join(' ', args)} ended before {step}: {(run.IsCompleted ? await run : null)}");
            await Task.Delay(100);
        }

        await (kill ? engine.KillAsync() : engine.StopAsync());
        File.Delete(Pause);
        return await run;
    }

    /// <summary>With the engine back: start, stop, rm work; the home outlives them.</summary>
    private async Task AssertUsableAgainAsync()
    {
        await OkAsync("start", _ws.Name, "--local");
        Assert.Equal("running", await StateAsync());
        Assert.Equal(1, (await _ws.ContainersAsync()).Running);
        await OkAsync("stop", _ws.Name, "--local");
        Assert.Equal("stopped", await StateAsync());
        await OkAsync("rm", _ws.Name, "--local");
        Assert.Null(await StateAsync());
        Assert.Equal((0, 0), await _ws.ContainersAsync());
        await _ws.AssertHomeKeptAsync();
    }

    [DockerTheory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Engine_down_under_a_running_workspace_is_one_line_and_the_record_follows_the_engine_when_back(bool kill)
    {
        var up = await UpAsync();
        Assert.True(up.ExitCode == 0, $"up: {up}");
        Assert.Equal("running", await StateAsync());

        await (kill ? engine.KillAsync() : engine.StopAsync());
        AssertEngineDown(await DsvmAsync(null, "ls", "--local"), "ls");
        AssertEngineDown(await DsvmAsync(null, "stop", _ws.Name, "--local"), "stop");
        AssertEngineDown(await DsvmAsync(null, "start", _ws.Name, "--local"), "start");

        await engine.StartAsync();
        // Whatever the engine did with the container (stopped it, or kept it), the record says so.
        Assert.NotNull(await StateAsync());
        await _ws.AssertHomeKeptAsync();
        await OkAsync("stop", _ws.Name, "--local");
        Assert.Equal("stopped", await StateAsync());
        await AssertUsableAgainAsync();
    }

    [DockerTheory]
    [InlineData("start.before-engine")]
    [InlineData("start.after-handle")]
    public async Task Engine_stopped_mid_up_fails_clearly_and_the_record_is_truthful_when_back(string step)
    {
        var up = await WithEngineStoppedAtAsync(step, kill: false, "up", "--env", "minimal", "--name", _ws.Name, "--size", "small", "--local");
        Assert.True(up.ExitCode is not 0 and not Killed, $"up with the engine stopped at {step}: {up}");
        Assert.DoesNotContain("   at ", up.All, StringComparison.Ordinal);
        Assert.Contains(FaultEngine.Socket, up.All, StringComparison.Ordinal);

        await engine.StartAsync();
        // One look settles it: no record of a server that is not there, no container the record does not know.
        var state = await StateAsync();
        Assert.True(state is "stopped" or "failed", $"after the engine came back: {state ?? "no record"}");
        // Stopped before the engine call, nothing was created (the home comes with the first start); after it, the home is kept.
        Assert.Equal(step == "start.before-engine" ? 0 : 1, (await _ws.HomesAsync()).Length);
        await AssertUsableAgainAsync();
    }

    [DockerTheory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Engine_down_mid_stop_leaves_stopping_that_is_repaired_when_back(bool kill)
    {
        var up = await UpAsync();
        Assert.True(up.ExitCode == 0, $"up: {up}");

        var stop = await WithEngineStoppedAtAsync("stop.after-stopping", kill, "stop", _ws.Name, "--local");
        AssertEngineDown(stop, "stop");
        // While the engine is down, start must not act on a record it cannot check.
        AssertEngineDown(await DsvmAsync(null, "start", _ws.Name, "--local"), "start");

        await engine.StartAsync();
        var state = await StateAsync();
        Assert.True(state is "stopped" or "running", $"after the engine came back: {state ?? "no record"}");
        // Never a second container next to a running one: start works on what is there.
        await OkAsync("start", _ws.Name, "--local");
        Assert.Equal("running", await StateAsync());
        Assert.Equal(1, (await _ws.ContainersAsync()).Running);
        await OkAsync("stop", _ws.Name, "--local");
        Assert.Equal("stopped", await StateAsync());
        await AssertUsableAgainAsync();
    }
}
