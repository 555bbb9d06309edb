using CliWrap;
using CliWrap.Buffered;
using CliWrap.Builders;
using Dsvm.Testing;

namespace Dsvm.Faults.Tests;

public sealed class DockerTheoryAttribute : TheoryAttribute
{
    public DockerTheoryAttribute()
    {
        if (TestEnvironment.DockerSkipReason is { } reason)
        {
            Skip = reason;
        }
    }
}

/// <summary>What one run of the <c>dsvm</c> tool gave.</summary>
public sealed record Result(int ExitCode, string Stdout, string Stderr)
{
    public override string ToString() => $"exit {ExitCode}\nstdout:\n{Stdout}\nstderr:\n{Stderr}";

    /// <summary>Everything it printed, as one string.</summary>
    public string All => Stdout + Stderr;
}

/// <summary>
/// What every fault test shares: a DSVM home of its own (the image cache is the shared one), one workspace name, the
/// engine it runs on (the host's, or the fault engine's socket), the real <c>dsvm</c> tool, the label look-ups of
/// the invariants (no running container the state calls stopped, no record claiming a server without one, the home
/// kept) and the clean-up of whatever a failed assertion left.
/// </summary>
public sealed class FaultWorkspace
{
    public FaultWorkspace(string prefix, string? engine = null)
    {
        Name = prefix + "-" + Guid.NewGuid().ToString("N")[..8];
        Engine = engine;
        Home = Path.Combine(TestEnvironment.Home, "faults", Name);
        Directory.CreateDirectory(Path.Combine(Home, "data"));
        Directory.CreateDirectory(Path.Combine(Home, "config"));
        var cache = Path.Combine(TestEnvironment.Home, "cache");
        Directory.CreateDirectory(cache);
        if (!Directory.Exists(Path.Combine(Home, "cache")))
        {
            Directory.CreateSymbolicLink(Path.Combine(Home, "cache"), cache);
        }
    }

    /// <summary>The workspace's name (unique per test).</summary>
    public string Name { get; }

    /// <summary>This test's DSVM home.</summary>
    public string Home { get; }

    /// <summary>The engine (<c>docker -H</c>), or null for the host engine.</summary>
    public string? Engine { get; }

    /// <summary>The docker CLI on this test's engine.</summary>
    public async Task<BufferedCommandResult> DockerAsync(params string[] args) =>
        await Cli.Wrap("docker").WithArguments(Engine is null ? args : ["-H", Engine, .. args])
            .WithValidation(CommandResultValidation.None).ExecuteBufferedAsync();

    /// <summary>The real <c>dsvm</c> tool, with the variables <paramref name="env"/> sets and an optional line on stdin.</summary>
    public static async Task<Result> RunCliAsync(Action<EnvironmentVariablesBuilder> env, string? stdin, IEnumerable<string> args, CancellationToken ct = default)
    {
        var cmd = Cli.Wrap("dotnet")
            .WithArguments([TestEnvironment.CliDll, .. args])
            .WithEnvironmentVariables(env)
            .WithWorkingDirectory(TestEnvironment.RepoRoot)
            .WithValidation(CommandResultValidation.None);
        if (stdin is not null)
        {
            cmd = cmd.WithStandardInputPipe(PipeSource.FromString(stdin + "\n"));
        }

        var r = await cmd.ExecuteBufferedAsync(ct);
        return new Result(r.ExitCode, r.StandardOutput, r.StandardError);
    }

    private async Task<int> CountAsync(params string[] args) =>
        (await DockerAsync(args)).StandardOutput.Split('\n', StringSplitOptions.RemoveEmptyEntries).Length;

    /// <summary>This workspace's containers, running or not, found by label.</summary>
    public async Task<(int Running, int All)> ContainersAsync() =>
        (await CountAsync("ps", "-q", "--filter", $"label=io.opendsvm.name={Name}"),
            await CountAsync("ps", "-aq", "--filter", $"label=io.opendsvm.name={Name}"));

    /// <summary>The workspace's home volumes, found by label (whatever their naming scheme).</summary>
    public async Task<string[]> HomesAsync() =>
        (await DockerAsync("volume", "ls", "-q", "--filter", $"label=io.opendsvm.name={Name}")).StandardOutput.Split('\n', StringSplitOptions.RemoveEmptyEntries);

    public async Task AssertHomeKeptAsync() => Assert.Single(await HomesAsync());

    /// <summary>
    /// The state <c>dsvm ls --local</c> shows for this workspace (null: no record), run by <paramref name="ok"/> (which
    /// asserts it succeeded), after checking the invariants against the engine.
    /// </summary>
    public async Task<string?> LsStateAsync(Func<string[], Task<Result>> ok)
    {
        var r = await ok(["ls", "--local", "-o", "json"]);
        var state = System.Text.Json.JsonDocument.Parse(r.Stdout).RootElement.GetProperty("workspaces").EnumerateArray()
            .Where(w => w.GetProperty("name").GetString() == Name)
            .Select(w => w.GetProperty("state").GetString()).FirstOrDefault();
        await AssertTruthfulAsync(state, r.ToString());
        return state;
    }

    /// <summary>
    /// The invariants between a state (as <c>ls</c> or the hub reports it; null: no record) and the engine: no running
    /// container the state calls stopped (or that has no record), no record claiming a server without one, never two.
    /// </summary>
    public async Task AssertTruthfulAsync(string? state, string context)
    {
        var (running, _) = await ContainersAsync();
        Assert.True(running <= 1, $"{running} containers run for one workspace: {context}");
        if (running > 0)
        {
            Assert.True(state is "running" or "starting", $"a container runs but the state says {state ?? "no record"}: {context}");
        }

        if (state is "running")
        {
            Assert.True(running == 1, $"the state says running, {running} container(s) run: {context}");
        }
    }

    /// <summary>Whatever a failed assertion left: the containers and the home of this test's workspace, and its folder.</summary>
    public async Task CleanUpAsync()
    {
        foreach (var id in (await DockerAsync("ps", "-aq", "--filter", $"label=io.opendsvm.name={Name}")).StandardOutput.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            await DockerAsync("rm", "-f", id);
        }

        foreach (var volume in await HomesAsync())
        {
            await DockerAsync("volume", "rm", "-f", volume);
        }

        Directory.Delete(Home, recursive: true);
    }
}
