using System.Text.Json;
using CliWrap;
using CliWrap.Buffered;
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

/// <summary>
/// The real <c>dsvm</c> tool against the real engine, killed (SIGKILL, via <c>DSVM_FAULT</c>) at each named step of
/// up, stop, resize and rm; then the next commands must find the truth: no running container the state calls
/// stopped, no running/starting record without its container, no deleted record coming back, the home kept.
/// Each test has a data folder of its own (the image cache is the shared one).
/// </summary>
[Trait("Requires", "Docker")]
public sealed class KillAtEveryStepTests : IDisposable
{
    private const int Killed = 137;
    private readonly string _home;
    private readonly string _name = "fault-" + Guid.NewGuid().ToString("N")[..8];

    public KillAtEveryStepTests()
    {
        _home = Path.Combine(TestEnvironment.Home, "faults", _name);
        Directory.CreateDirectory(Path.Combine(_home, "data"));
        var cache = Path.Combine(TestEnvironment.Home, "cache");
        Directory.CreateDirectory(cache);
        if (!Directory.Exists(Path.Combine(_home, "cache")))
        {
            Directory.CreateSymbolicLink(Path.Combine(_home, "cache"), cache);
        }
    }

    public void Dispose()
    {
        // Whatever a failed assertion left: the containers and the home of this test's workspace.
        foreach (var id in Docker("ps", "-aq", "--filter", $"label=io.opendsvm.name={_name}").GetAwaiter().GetResult().StandardOutput.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            Docker("rm", "-f", id).GetAwaiter().GetResult();
        }

        foreach (var volume in HomesAsync().GetAwaiter().GetResult())
        {
            Docker("volume", "rm", "-f", volume).GetAwaiter().GetResult();
        }

        Directory.Delete(_home, recursive: true);
    }

    private sealed record Result(int ExitCode, string Stdout, string Stderr)
    {
        public override string ToString() => $"exit {ExitCode}\nstdout:\n{Stdout}\nstderr:\n{Stderr}";
    }

    private async Task<Result> DsvmAsync(string? fault, params string[] args)
    {
        var r = await Cli.Wrap("dotnet")
            .WithArguments([TestEnvironment.CliDll, .. args])
            .WithEnvironmentVariables(e =>
            {
                e.Set("DSVM_HOME", _home);
                e.Set("DSVM_FAULT", fault);
                e.Set("DSVM_START_TIMEOUT", "60");
            })
            .WithWorkingDirectory(TestEnvironment.RepoRoot)
            .WithValidation(CommandResultValidation.None)
            .ExecuteBufferedAsync();
        return new Result(r.ExitCode, r.StandardOutput, r.StandardError);
    }

    private async Task<Result> OkAsync(params string[] args)
    {
        var r = await DsvmAsync(null, args);
        Assert.True(r.ExitCode == 0, $"dsvm {string.Join(' ', args)}: {r}");
        return r;
    }

    private static async Task<BufferedCommandResult> Docker(params string[] args) =>
        await Cli.Wrap("docker").WithArguments(args).WithValidation(CommandResultValidation.None).ExecuteBufferedAsync();

    private Task<Result> UpAsync(string? fault = null, string size = "small") =>
        DsvmAsync(fault, "up", "--env", "minimal", "--name", _name, "--size", size, "--local", "-o", "json");

    /// <summary>This workspace's containers, running or not, found by label.</summary>
    private async Task<(int Running, int All)> ContainersAsync()
    {
        var running = (await Docker("ps", "-q", "--filter", $"label=io.opendsvm.name={_name}")).StandardOutput.Split('\n', StringSplitOptions.RemoveEmptyEntries).Length;
        var all = (await Docker("ps", "-aq", "--filter", $"label=io.opendsvm.name={_name}")).StandardOutput.Split('\n', StringSplitOptions.RemoveEmptyEntries).Length;
        return (running, all);
    }

    /// <summary>The record as <c>dsvm ls</c> shows it (null: none), after checking the invariants against the engine.</summary>
    private async Task<JsonElement?> LsAsync()
    {
        var r = await OkAsync("ls", "--local", "-o", "json");
        var record = JsonDocument.Parse(r.Stdout).RootElement.GetProperty("workspaces").EnumerateArray()
            .Where(w => w.GetProperty("name").GetString() == _name).Select(w => (JsonElement?)w).FirstOrDefault();
        var (running, _) = await ContainersAsync();
        var state = record?.GetProperty("state").GetString();
        // No running container that the state calls stopped (or that has no record at all).
        if (running > 0)
        {
            Assert.True(state is "running" or "starting", $"a container runs but ls says {state ?? "no record"}: {r}");
        }

        // No record that claims a running server without one.
        if (state is "running")
        {
            Assert.True(running == 1, $"ls says running, {running} container(s) run: {r}");
        }

        Assert.True(running <= 1, $"{running} containers run for one workspace");
        return record;
    }

    /// <summary>The workspace's home volumes, found by label (whatever their naming scheme).</summary>
    private async Task<string[]> HomesAsync() =>
        (await Docker("volume", "ls", "-q", "--filter", $"label=io.opendsvm.name={_name}")).StandardOutput.Split('\n', StringSplitOptions.RemoveEmptyEntries);

    private async Task AssertHomeKeptAsync() => Assert.Single(await HomesAsync());

    private async Task AssertRecoversAsync()
    {
        var up = await UpAsync();
        Assert.True(up.ExitCode == 0, $"up after the fault: {up}");
        Assert.Equal("running", (await LsAsync())?.GetProperty("state").GetString());
        Assert.Equal((1, 1), await ContainersAsync());
        await OkAsync("rm", _name, "--local");
        Assert.Null(await LsAsync());
        Assert.Null(await LsAsync());
        Assert.Equal((0, 0), await ContainersAsync());
        await AssertHomeKeptAsync();
    }

    [DockerTheory]
    [InlineData("up.after-pending")]
    [InlineData("start.before-engine")]
    [InlineData("start.after-engine")]
    [InlineData("start.after-handle")]
    [InlineData("start.readiness")]
    [InlineData("start.after-ready")]
    public async Task Up_KilledAt(string step)
    {
        var killed = await UpAsync(step);
        Assert.True(killed.ExitCode == Killed, $"expected a kill at {step}: {killed}");

        var record = await LsAsync();
        Assert.NotNull(record);
        await AssertRecoversAsync();
    }

    [DockerTheory]
    [InlineData("stop.after-stopping")]
    [InlineData("stop.after-engine")]
    public async Task Stop_KilledAt(string step)
    {
        Assert.Equal(0, (await UpAsync()).ExitCode);

        var killed = await DsvmAsync(step, "stop", _name, "--local");
        Assert.True(killed.ExitCode == Killed, $"expected a kill at {step}: {killed}");

        // The interrupted stop is finished by the next look, never left Stopping with the container running.
        Assert.Equal("stopped", (await LsAsync())?.GetProperty("state").GetString());
        Assert.Equal(0, (await ContainersAsync()).Running);
        await AssertHomeKeptAsync();
        await AssertRecoversAsync();
    }

    [DockerTheory]
    [InlineData("resize.after-stop")]
    [InlineData("resize.after-size")]
    public async Task Resize_KilledAt(string step)
    {
        Assert.Equal(0, (await UpAsync()).ExitCode);

        var killed = await DsvmAsync(step, "resize", _name, "--size", "medium", "--local");
        Assert.True(killed.ExitCode == Killed, $"expected a kill at {step}: {killed}");

        var record = await LsAsync();
        Assert.Equal("stopped", record?.GetProperty("state").GetString());
        await OkAsync("start", _name, "--local");
        Assert.Equal("running", (await LsAsync())?.GetProperty("state").GetString());
        await OkAsync("rm", _name, "--local");
        Assert.Null(await LsAsync());
        await AssertHomeKeptAsync();
    }

    [DockerFact]
    public async Task Rm_KilledAfterTheEngineCall_LeavesARecordThatRmFinishes_AndNoGhost()
    {
        Assert.Equal(0, (await UpAsync()).ExitCode);

        var killed = await DsvmAsync("rm.after-engine", "rm", _name, "--local");
        Assert.True(killed.ExitCode == Killed, $"expected a kill: {killed}");

        Assert.Equal("stopped", (await LsAsync())?.GetProperty("state").GetString());
        await OkAsync("rm", _name, "--local");
        Assert.Null(await LsAsync());
        Assert.Null(await LsAsync());
        await AssertHomeKeptAsync();
    }

    [DockerFact]
    public async Task CorruptStateFile_IsOneLine_MovedAside_AndDoctorRepairRebuildsTheRecord()
    {
        Assert.Equal(0, (await UpAsync()).ExitCode);
        var db = Path.Combine(_home, "data", "dsvm.db");
        foreach (var f in new[] { db + "-wal", db + "-shm" }.Where(File.Exists))
        {
            File.Delete(f);
        }

        await File.WriteAllTextAsync(db, string.Concat(Enumerable.Repeat("garbage ", 1000)));

        var ls = await DsvmAsync(null, "ls", "--local");
        Assert.True(ls.ExitCode == 12, $"ls on a corrupt file: {ls}");
        var output = (ls.Stdout + ls.Stderr).Trim();
        Assert.DoesNotContain("   at ", output, StringComparison.Ordinal);
        // One message (the console may wrap it at its width), naming the file and what to do.
        Assert.StartsWith("error: state file", output, StringComparison.Ordinal);
        var joined = output.Replace("\n", "", StringComparison.Ordinal);
        Assert.Contains(db, joined, StringComparison.Ordinal);
        Assert.Contains("dsvm doctor --repair", joined, StringComparison.Ordinal);
        Assert.Single(Directory.GetFiles(Path.Combine(_home, "data"), "dsvm.db.corrupt-*"));

        var repair = await OkAsync("doctor", "--repair");
        Assert.Contains($"rebuilt local/{_name}", repair.Stdout, StringComparison.Ordinal);
        Assert.Equal("stopped", (await LsAsync())?.GetProperty("state").GetString());
        await OkAsync("start", _name, "--local");
        Assert.Equal("running", (await LsAsync())?.GetProperty("state").GetString());
        await OkAsync("rm", _name, "--local");
        await AssertHomeKeptAsync();
    }
}
