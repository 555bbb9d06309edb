using Dsvm.Testing;

namespace Dsvm.Faults.Tests;

/// <summary>
/// Issue 12, an engine that hangs: the test's own engine (<see cref="FaultEngine"/>) frozen with SIGSTOP under a
/// running workspace accepts connections on its socket and never answers. With <c>request-timeout: 3s</c> in
/// <c>backends.yaml</c>, the real <c>dsvm</c> tool and the real hub end every operation that needs the engine with
/// one line naming the engine, its endpoint and the timeout (the not-ready exit code; a problem, never a 500, from the
/// hub, which keeps answering lists from its records). Once the engine is thawed the record follows what the engine
/// says, the workspace stops, starts and is removed again, and its home is kept. The commands get minutes to end:
/// the assertion is that they end with the message naming the configured timeout, not how fast.
/// </summary>
[Trait("Requires", "Docker")]
[Collection(FaultEngineCollection.Name)]
public sealed class EngineHungTests : IAsyncLifetime
{
    private const int NotReady = 5;
    private const string RequestTimeout = "3s";
    private static readonly TimeSpan Generous = TimeSpan.FromMinutes(3);

    private readonly FaultEngine _engine;
    private readonly FaultWorkspace _ws;
    private readonly HubProcess _hub;

    public EngineHungTests(FaultEngine engine)
    {
        _engine = engine;
        _ws = new FaultWorkspace("enghang", FaultEngine.Socket);
        _hub = new HubProcess(_ws);
    }

    public Task InitializeAsync() => FaultEngine.PrepareHomeAsync(_ws.Home, RequestTimeout);

    public async Task DisposeAsync()
    {
        _hub.Stop();
        // A failed assertion leaves the engine frozen: starting it thaws it, for the clean-up and the next test.
        await _engine.StartAsync();
        await _ws.CleanUpAsync();
    }

    /// <summary>The real CLI on the test's home, killed if it has not ended after <see cref="Generous"/>.</summary>
    private async Task<Result> DsvmAsync(params string[] args)
    {
        using var limit = new CancellationTokenSource(Generous);
        return await FaultWorkspace.RunCliAsync(e => e
            .Set("DSVM_HOME", _ws.Home)
            .Set("DOCKER_HOST", FaultEngine.Socket)
            .Set("DSVM_BACKENDS", Path.Combine(_ws.Home, "backends.yaml"))
            .Set("DSVM_HUB_URL", null)
            .Set("XDG_CONFIG_HOME", Path.Combine(_ws.Home, "config"))
            .Set("DSVM_START_TIMEOUT", "60"), null, args, limit.Token);
    }

    private async Task<Result> OkAsync(params string[] args)
    {
        var r = await DsvmAsync(args);
        Assert.True(r.ExitCode == 0, $"dsvm {string.Join(' ', args)}: {r}");
        return r;
    }

    /// <summary>The state <c>dsvm ls</c> shows (null: no record), after checking the invariants against the engine.</summary>
    private Task<string?> StateAsync() => _ws.LsStateAsync(OkAsync);

    /// <summary>No stack trace, the message naming the endpoint, the configured timeout and the setting to raise.</summary>
    private static void AssertNotAnswering(Result r, string what)
    {
        Assert.DoesNotContain("   at ", r.All, StringComparison.Ordinal);
        Assert.DoesNotContain("Exception", r.All, StringComparison.Ordinal);
        Assert.Contains($"the Docker engine at {FaultEngine.Socket} did not answer within 3 s", r.All, StringComparison.Ordinal);
        Assert.True(r.All.Contains("request-timeout", StringComparison.Ordinal), $"{what} with the engine hung does not say what to raise: {r}");
    }

    /// <summary>The CLI's own line: exactly one error line and the not-ready exit code.</summary>
    private static void AssertNotAnsweringLine(Result r, string what)
    {
        Assert.True(r.ExitCode == NotReady, $"{what} with the engine hung: {r}");
        AssertNotAnswering(r, what);
        Assert.Single(r.All.Split('\n', StringSplitOptions.RemoveEmptyEntries), l => l.StartsWith("error: ", StringComparison.Ordinal));
    }

    [DockerFact]
    public async Task Hung_engine_is_one_line_naming_the_timeout_and_the_record_follows_the_engine_when_thawed()
    {
        var up = await DsvmAsync("up", "--env", "minimal", "--name", _ws.Name, "--size", "small", "--local", "-o", "json");
        Assert.True(up.ExitCode == 0, $"up: {up}");
        Assert.Equal("running", await StateAsync());

        await _engine.FreezeAsync();
        AssertNotAnsweringLine(await DsvmAsync("ls", "--local"), "ls");
        AssertNotAnsweringLine(await DsvmAsync("stop", _ws.Name, "--local"), "stop");

        await _engine.ThawAsync();
        // The stop never reached the container: the record says what the engine says.
        Assert.True(await StateAsync() is "running" or "stopped", "after the engine was thawed");
        await _ws.AssertHomeKeptAsync();
        await OkAsync("stop", _ws.Name, "--local");
        Assert.Equal("stopped", await StateAsync());
        await OkAsync("start", _ws.Name, "--local");
        Assert.Equal("running", await StateAsync());
        Assert.Equal(1, (await _ws.ContainersAsync()).Running);
        await OkAsync("stop", _ws.Name, "--local");
        await OkAsync("rm", _ws.Name, "--local");
        Assert.Null(await StateAsync());
        Assert.Equal((0, 0), await _ws.ContainersAsync());
        await _ws.AssertHomeKeptAsync();
    }

    /// <summary>
    /// The hub's state once it has settled with the engine thawed (no pending, starting or stopping), checked against
    /// the engine then. A stop the engine did not answer leaves Stopping with the server still running until the hub's
    /// reconciliation (every minute) sets it right: the invariants hold for the settled state only.
    /// </summary>
    private async Task<string?> SettledStateAsync()
    {
        for (var i = 0; i < 150; i++)
        {
            var (state, _) = await _hub.RecordedStateAsync();
            if (state is not "pending" and not "starting" and not "stopping")
            {
                break;
            }

            await Task.Delay(1000);
        }

        return await _hub.StateAsync();
    }

    [DockerFact]
    public async Task Hung_engine_under_the_hub_is_a_problem_naming_the_timeout_and_the_hub_follows_the_engine_when_thawed()
    {
        await _hub.StartAsync(null, new Dictionary<string, string>
        {
            ["DOCKER_HOST"] = FaultEngine.Socket,
            ["DSVM_BACKENDS"] = Path.Combine(_ws.Home, "backends.yaml"),
        });
        await _hub.LoginAsync();
        var up = await _hub.DsvmAsync(null, "up", "--env", "minimal", "--name", _ws.Name, "--size", "small", "-o", "json");
        Assert.True(up.ExitCode == 0, $"up: {up}");
        Assert.Equal("running", await _hub.StateAsync());

        await _engine.FreezeAsync();
        using (var limit = new CancellationTokenSource(Generous))
        {
            // GET /api/v1/workspaces answers from the hub's records (the invariants need the engine: after the thaw).
            var ls = await _hub.DsvmAsync(null, ["ls", "-o", "json"], limit.Token);
            Assert.True(ls.ExitCode == 0, $"ls through the hub with the engine hung: {ls}");
            Assert.Contains(_ws.Name, ls.Stdout, StringComparison.Ordinal);
            var stop = await _hub.DsvmAsync(null, ["stop", _ws.Name], limit.Token);
            Assert.True(stop.ExitCode != 0, $"stop through the hub with the engine hung succeeded: {stop}");
            Assert.DoesNotContain("500", stop.All, StringComparison.Ordinal);
            AssertNotAnswering(stop, "stop through the hub");
        }

        Assert.False(_hub.Process.HasExited, "the hub exited with the engine hung");

        await _engine.ThawAsync();
        Assert.True(await SettledStateAsync() is "running" or "stopped");
        await _ws.AssertHomeKeptAsync();
        if (await _hub.StateAsync() == "running")
        {
            await _hub.OkAsync("stop", _ws.Name);
        }

        Assert.Equal("stopped", await SettledStateAsync());
        await _hub.OkAsync("start", _ws.Name);
        Assert.Equal("running", await SettledStateAsync());
        await _hub.OkAsync("stop", _ws.Name);
        await _hub.OkAsync("rm", _ws.Name);
        Assert.Null(await _hub.StateAsync());
        Assert.Equal((0, 0), await _ws.ContainersAsync());
        await _ws.AssertHomeKeptAsync();
        Assert.False(_hub.Process.HasExited, "the hub exited");
    }
}
