using Dsvm.Testing;

namespace Dsvm.Faults.Tests;

/// <summary>
/// The real hub process (<c>dsvm hub serve</c>) on the real engine, killed (SIGKILL via <c>DSVM_FAULT</c>) at each
/// named step while it starts or stops a workspace for a client (the real CLI, logged in with a token); then a fresh
/// hub on the same state must tell the truth: no container running that the hub calls stopped, no record that claims
/// a server without one, the home kept, and the workspace usable again through the hub.
/// </summary>
[Trait("Requires", "Docker")]
public sealed class HubKilledAtEveryStepTests : IAsyncLifetime
{
    private const int Killed = 137;
    private readonly FaultWorkspace _ws;
    private readonly HubProcess _hub;

    public HubKilledAtEveryStepTests()
    {
        _ws = new FaultWorkspace("hubfault");
        _hub = new HubProcess(_ws);
    }

    public async Task InitializeAsync()
    {
        if (TestEnvironment.DockerSkipReason is not null)
        {
            return;
        }

        // The image the hub offers as "minimal" (built once into the shared cache).
        await BuiltEnvironment.GetAsync("minimal");
    }

    public async Task DisposeAsync()
    {
        _hub.Stop();
        await _ws.CleanUpAsync();
    }

    private Task StartHubAsync(string? fault) => _hub.StartAsync(fault);

    private Task<Result> DsvmAsync(string? stdin, params string[] args) => _hub.DsvmAsync(stdin, args);

    private Task<Result> OkAsync(params string[] args) => _hub.OkAsync(args);

    private async Task<int> RunningAsync() => (await _ws.ContainersAsync()).Running;

    private Task<string[]> HomesAsync() => _ws.HomesAsync();

    private Task<string?> StateAsync() => _hub.StateAsync();

    /// <summary>Waits for the killed hub to be gone, starts a clean one, and waits until the state settles.</summary>
    private async Task<string?> RestartAndSettleAsync(string step)
    {
        Assert.True(_hub.Process.WaitForExit(TimeSpan.FromSeconds(120)), $"the hub was not killed at {step}");
        Assert.Equal(Killed, _hub.Process.ExitCode);
        _hub.Stop();
        await StartHubAsync(null);
        // A start interrupted mid-way is repaired by the next look or the reconcile: within its start timeout (the hub's 120 s
        // here); an accepted start that never began is failed at that deadline.
        string? state = null;
        for (var i = 0; i < 180; i++)
        {
            state = await StateAsync();
            if (state is not "pending" and not "starting" and not "stopping")
            {
                return state;
            }

            await Task.Delay(1000);
        }

        return state;
    }

    private Task LoginAsync() => _hub.LoginAsync();

    private async Task AssertUsableAgainAsync()
    {
        var up = await DsvmAsync(null, "up", "--env", "minimal", "--name", _ws.Name, "--size", "small", "-o", "json");
        Assert.True(up.ExitCode == 0, $"up after the fault: {up}");
        Assert.Equal("running", await StateAsync());
        await OkAsync("rm", _ws.Name);
        Assert.Null(await StateAsync());
        Assert.Equal(0, await RunningAsync());
        // rm without --delete-home keeps the home.
        Assert.Single(await HomesAsync());
    }

    [DockerTheory]
    [InlineData("hub.after-accept")]
    [InlineData("start.after-engine")]
    [InlineData("start.after-handle")]
    [InlineData("start.readiness")]
    public async Task Hub_killed_while_starting_a_workspace_restarts_truthful(string step)
    {
        await StartHubAsync(step);
        await LoginAsync();

        var up = await DsvmAsync(null, "up", "--env", "minimal", "--name", _ws.Name, "--size", "small", "-o", "json");
        Assert.NotEqual(0, up.ExitCode);
        var state = await RestartAndSettleAsync(step);
        Assert.True(state is "running" or "stopped" or "failed", $"after a kill at {step} the hub says {state ?? "no record"}");
        if (step != "hub.after-accept")
        {
            // Nothing was created before the accept: no home yet.
            Assert.Single(await HomesAsync());
        }

        await AssertUsableAgainAsync();
    }

    [DockerTheory]
    [InlineData("stop.after-stopping")]
    [InlineData("stop.after-engine")]
    public async Task Hub_killed_while_stopping_a_workspace_restarts_truthful(string step)
    {
        await StartHubAsync(step);
        await LoginAsync();
        var up = await DsvmAsync(null, "up", "--env", "minimal", "--name", _ws.Name, "--size", "small", "-o", "json");
        Assert.True(up.ExitCode == 0, $"up: {up}");

        var stop = await DsvmAsync(null, "stop", _ws.Name);
        Assert.NotEqual(0, stop.ExitCode);
        var state = await RestartAndSettleAsync(step);
        Assert.True(state is "stopped" or "running", $"after a kill at {step} the hub says {state ?? "no record"}");
        Assert.Single(await HomesAsync());
        await AssertUsableAgainAsync();
    }
}
