using System.Text.Json;
using Dsvm.Testing;

namespace Dsvm.Faults.Tests;

/// <summary>
/// The real <c>dsvm</c> tool against the real engine, killed (SIGKILL, via <c>DSVM_FAULT</c>) at each named step of
/// up, stop, resize and rm; then the next commands must find the truth: no running container the state calls
/// stopped, no running/starting record without its container, no deleted record coming back, the home kept.
/// Each test has a data folder of its own (the image cache is the shared one).
/// </summary>
[Trait("Requires", "Docker")]
public sealed class KillAtEveryStepTests : IAsyncLifetime
{
    private const int Killed = 137;
    private readonly FaultWorkspace _ws = new("fault");

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync() => await _ws.CleanUpAsync();

    private Task<Result> DsvmAsync(string? fault, params string[] args) =>
        FaultWorkspace.RunCliAsync(e => e.Set("DSVM_HOME", _ws.Home).Set("DSVM_FAULT", fault).Set("DSVM_START_TIMEOUT", "60"), null, args);

    private async Task<Result> OkAsync(params string[] args)
    {
        var r = await DsvmAsync(null, args);
        Assert.True(r.ExitCode == 0, $"dsvm {string.Join(' ', args)}: {r}");
        return r;
    }

    private Task<Result> UpAsync(string? fault = null, string size = "small") =>
        DsvmAsync(fault, "up", "--env", "minimal", "--name", _ws.Name, "--size", size, "--local", "-o", "json");

    private Task<(int Running, int All)> ContainersAsync() => _ws.ContainersAsync();

    /// <summary>The record as <c>dsvm ls</c> shows it (null: none), after checking the invariants against the engine.</summary>
    private async Task<JsonElement?> LsAsync()
    {
        var r = await OkAsync("ls", "--local", "-o", "json");
        var record = JsonDocument.Parse(r.Stdout).RootElement.GetProperty("workspaces").EnumerateArray()
            .Where(w => w.GetProperty("name").GetString() == _ws.Name).Select(w => (JsonElement?)w).FirstOrDefault();
        await _ws.AssertTruthfulAsync(record?.GetProperty("state").GetString(), r.ToString());
        return record;
    }

    private Task AssertHomeKeptAsync() => _ws.AssertHomeKeptAsync();

    private async Task AssertRecoversAsync()
    {
        var up = await UpAsync();
        Assert.True(up.ExitCode == 0, $"up after the fault: {up}");
        Assert.Equal("running", (await LsAsync())?.GetProperty("state").GetString());
        Assert.Equal((1, 1), await ContainersAsync());
        await OkAsync("rm", _ws.Name, "--local");
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

        var killed = await DsvmAsync(step, "stop", _ws.Name, "--local");
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

        var killed = await DsvmAsync(step, "resize", _ws.Name, "--size", "medium", "--local");
        Assert.True(killed.ExitCode == Killed, $"expected a kill at {step}: {killed}");

        var record = await LsAsync();
        Assert.Equal("stopped", record?.GetProperty("state").GetString());
        await OkAsync("start", _ws.Name, "--local");
        Assert.Equal("running", (await LsAsync())?.GetProperty("state").GetString());
        await OkAsync("rm", _ws.Name, "--local");
        Assert.Null(await LsAsync());
        await AssertHomeKeptAsync();
    }

    [DockerFact]
    public async Task Rm_KilledAfterTheEngineCall_LeavesARecordThatRmFinishes_AndNoGhost()
    {
        Assert.Equal(0, (await UpAsync()).ExitCode);

        var killed = await DsvmAsync("rm.after-engine", "rm", _ws.Name, "--local");
        Assert.True(killed.ExitCode == Killed, $"expected a kill: {killed}");

        Assert.Equal("stopped", (await LsAsync())?.GetProperty("state").GetString());
        await OkAsync("rm", _ws.Name, "--local");
        Assert.Null(await LsAsync());
        Assert.Null(await LsAsync());
        await AssertHomeKeptAsync();
    }

    [DockerFact]
    public async Task CorruptStateFile_IsOneLine_MovedAside_AndDoctorRepairRebuildsTheRecord()
    {
        Assert.Equal(0, (await UpAsync()).ExitCode);
        var db = Path.Combine(_ws.Home, "data", "dsvm.db");
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
        Assert.Single(Directory.GetFiles(Path.Combine(_ws.Home, "data"), "dsvm.db.corrupt-*"));

        var repair = await OkAsync("doctor", "--repair");
        Assert.Contains($"rebuilt local/{_ws.Name}", repair.Stdout, StringComparison.Ordinal);
        Assert.Equal("stopped", (await LsAsync())?.GetProperty("state").GetString());
        await OkAsync("start", _ws.Name, "--local");
        Assert.Equal("running", (await LsAsync())?.GetProperty("state").GetString());
        await OkAsync("rm", _ws.Name, "--local");
        await AssertHomeKeptAsync();
    }
}
