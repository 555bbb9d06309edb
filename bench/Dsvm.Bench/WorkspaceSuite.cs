using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using System.Text.RegularExpressions;
using Dsvm.Core;
using Dsvm.Core.Sizes;
using Dsvm.Core.Specs;
using Dsvm.Core.Workspaces;
using Dsvm.Data;
using Dsvm.Docker;
using Dsvm.Images;

namespace Dsvm.Bench;

/// <summary>
/// Workspace start times of the <c>minimal</c> environment with its image present: sequential starts through
/// <see cref="WorkspaceManager.UpAsync"/>, a few through the CLI as a process, then many at once and their idle
/// memory. Every workspace it makes (owner <c>bench</c>; the CLI's are <c>local</c>) is deleted with its home.
/// </summary>
internal sealed partial class WorkspaceSuite
{
    public const string Owner = "bench";
    private const string CliOwner = "local";
    internal const string Environment = "minimal";
    private const string Size = "small";
    private const int CliEvery = 5;
    private const double P50GoalSeconds = 2.5;

    private static readonly HttpClient Http = new() { Timeout = TimeSpan.FromSeconds(5) };

    private readonly BenchOptions _options;
    private readonly BenchHome _home;
    private readonly ImageServices _images;
    private readonly SqliteWorkspaceStore _store;
    private readonly WorkspaceManager _manager;
    private readonly string _run = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(2));
    private readonly HashSet<(string Owner, string Name)> _live = [];
    private readonly Lock _liveGate = new();
    private readonly List<string> _notes = [];

    public WorkspaceSuite(BenchOptions options, BenchHome home, ImageServices images)
    {
        _options = options;
        _home = home;
        _images = images;
        _store = new SqliteWorkspaceStore(home.Paths.Database);
        var gpus = new NvidiaGpuDetector();
        // A generous start timeout: many workspaces at once share two CPUs here.
        _manager = new WorkspaceManager(new DockerWorkspaceBackend(new DockerBackendOptions(), gpus), _store,
            SizeCatalog.Load(null), gpus, new HttpReadinessProbe(Http), home.Paths, TimeProvider.System,
            new WorkspaceOptions { StartTimeout = TimeSpan.FromSeconds(300) });
    }

    public async Task<WorkspaceSuiteResult> RunAsync(CancellationToken ct)
    {
        var timings = new List<TimingRow>();
        var memory = new List<MemoryRow>();
        var goals = new List<GoalRow>();
        var latest = await LatestTag.CaptureAsync(_images.Docker, Environment, ct);
        try
        {
            await DeleteLeftoversAsync();
            var image = await EnsureImageAsync(latest, ct);

            var (sequential, cli) = await SequentialAsync(image, ct);
            timings.Add(sequential);
            timings.Add(cli);
            goals.Add(new GoalRow($"sequential up p50 < {P50GoalSeconds} s",
                sequential.Seconds is { } s ? $"{Report.Seconds(s.P50)} s" : "not measured", sequential.Seconds is { } x ? x.P50 < P50GoalSeconds : null));

            var (each, all, mem) = await ConcurrentAsync(image, ct);
            timings.Add(each);
            timings.Add(all);
            memory.AddRange(mem);
        }
        finally
        {
            await DeleteAllAsync();
            if (await latest.RestoreAsync() is { } problem)
            {
                _notes.Add(problem);
            }
        }

        _notes.Add($"host: {System.Environment.ProcessorCount} CPUs shared by all workspaces; size '{Size}' limits each to 1 vCPU and 2 GiB, so {_options.Concurrent} fit by limits.");
        _notes.Add("the CLI row is the wall time of `dotnet dsvm.dll up` as a process: .NET start-up, the image check of `env build` and the same UpAsync.");
        return new WorkspaceSuiteResult(timings, memory, goals,
        [
            new PublishedRow("JupyterHub DockerSpawner", "7-30 s"),
            new PublishedRow("Azure Data Science VM (provisioning)", "~5 min"),
            new PublishedRow("mybinder.org (cached image)", "median ~15 s"),
        ], _notes);
    }

    /// <summary>The minimal image of the benchmark's copy: built through <see cref="ImageServices"/> only when it is missing.</summary>
    private Task<string> EnsureImageAsync(LatestTag latest, CancellationToken ct) => EnsureMinimalImageAsync(_home, _images, latest, _notes, ct);

    /// <summary>The minimal image of the benchmark's copy (shared with the hub suite); see <see cref="EnsureImageAsync"/>.</summary>
    internal static async Task<string> EnsureMinimalImageAsync(BenchHome home, ImageServices images, LatestTag latest, List<string> notes, CancellationToken ct)
    {
        var dir = home.CopyEnvironment(Environment, Path.Combine("environments", Environment));
        var spec = images.LoadSpec(dir);
        var rendered = await Engine.RenderAsync(images, spec, ct);
        if (rendered is not null && await images.Docker.ImageExistsAsync(rendered.Image, ct)
            && images.Records.Find(spec.Name, rendered.Tag) is { Status: BuildStatus.Succeeded })
        {
            Log.Say($"image {rendered.Image} is present");
            return rendered.Image;
        }

        Log.Say($"building {Environment} (missing here, or not recorded in the benchmark's home)");
        var sw = Stopwatch.StartNew();
        var record = await images.Builder.BuildAsync(spec, new BuildOptions(), new BuildLog(Environment), ct);
        await latest.AddOursAsync(record.Image, ct);
        notes.Add($"the {Environment} image was built first ({(record.Cached ? "already present" : $"{sw.Elapsed.TotalSeconds:0} s, not part of the timings")}).");
        return record.Image;
    }

    private static CreateWorkspaceRequest Request(string name, string image) => new()
    {
        Name = name, Owner = Owner, OwnerId = WorkspaceIds.LocalOwnerId, Environment = Environment, Image = image, GpuMode = GpuMode.None, Size = Size,
    };

    private async Task<(TimingRow Sequential, TimingRow Cli)> SequentialAsync(string image, CancellationToken ct)
    {
        var cliDll = _options.CliDll ?? Path.Combine(_home.RepoRoot, "src", "Dsvm.Cli", "bin", "Release", "net10.0", "dsvm.dll");
        var cliMissing = !File.Exists(cliDll);
        var seconds = new List<double>();
        var cliSeconds = new List<double>();
        int failures = 0, cliFailures = 0;
        string? failure = null, cliFailure = null;
        for (var i = 1; i <= _options.Runs; i++)
        {
            var name = $"bench-s{_run}-{i}";
            Track(Owner, name);
            var sw = Stopwatch.StartNew();
            try
            {
                await _manager.UpAsync(Request(name, image), null, ct);
                sw.Stop();
                seconds.Add(sw.Elapsed.TotalSeconds);
                Log.Say($"up {i}/{_options.Runs}: {sw.Elapsed.TotalSeconds:0.00} s");
            }
            catch (DsvmException ex)
            {
                failures++;
                failure ??= FirstLine(ex.Message);
                Log.Warn($"up {i}/{_options.Runs} failed: {ex.Message}");
            }
            finally
            {
                await DeleteAsync(Owner, name);
            }

            if (!cliMissing && (i % CliEvery == 0 || (i == _options.Runs && cliSeconds.Count + cliFailures == 0)))
            {
                var (ok, elapsed, error) = await CliUpAsync(cliDll, ct);
                if (ok)
                {
                    cliSeconds.Add(elapsed);
                }
                else
                {
                    cliFailures++;
                    cliFailure ??= error;
                }
            }
        }

        var sequential = new TimingRow($"up, sequential (WorkspaceManager.UpAsync, {Size})", Summary.Of(seconds), failures,
            failure is null ? "home deleted after each, outside the timing" : "first failure: " + failure);
        var cli = new TimingRow($"up via CLI (dotnet dsvm.dll up --size {Size})", Summary.Of(cliSeconds), cliFailures,
            cliMissing ? $"skipped: {cliDll} is missing (build src/Dsvm.Cli in Release, or use bench/run.sh)"
            : cliFailure is null ? $"one every {CliEvery} sequential runs (at least one)" : "first failure: " + cliFailure);
        return (sequential, cli);
    }

    /// <summary>Runs <c>dotnet dsvm.dll up</c> against the benchmark's home and environment copy; returns its wall time.</summary>
    private async Task<(bool Ok, double Seconds, string? Error)> CliUpAsync(string cliDll, CancellationToken ct)
    {
        var name = $"bench-cli{_run}-{Guid.NewGuid().ToString("N")[..4]}";
        Track(CliOwner, name);
        var psi = new ProcessStartInfo("dotnet")
        {
            WorkingDirectory = _home.Root,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var a in new[] { cliDll, "up", "--env", Environment, "--size", Size, "--name", name, "--output", "json" })
        {
            psi.ArgumentList.Add(a);
        }

        // The benchmark's data folder, and its copy of the environment ahead of any other.
        psi.Environment["DSVM_HOME"] = _home.Root;
        psi.Environment["DSVM_ENVIRONMENTS"] = _home.EnvironmentsRoot;
        var sw = Stopwatch.StartNew();
        try
        {
            using var process = Process.Start(psi) ?? throw new InvalidOperationException("dotnet did not start");
            var stdout = process.StandardOutput.ReadToEndAsync(ct);
            var stderr = process.StandardError.ReadToEndAsync(ct);
            await process.WaitForExitAsync(ct);
            sw.Stop();
            var output = (await stdout + await stderr).Trim();
            if (process.ExitCode != 0)
            {
                Log.Warn($"CLI up failed (exit {process.ExitCode}): {output}");
                return (false, sw.Elapsed.TotalSeconds, $"exit {process.ExitCode}: {FirstLine(output)}");
            }

            Log.Say($"CLI up: {sw.Elapsed.TotalSeconds:0.00} s");
            return (true, sw.Elapsed.TotalSeconds, null);
        }
        catch (System.ComponentModel.Win32Exception ex)
        {
            return (false, 0, $"could not run dotnet: {ex.Message}");
        }
        finally
        {
            await DeleteAsync(CliOwner, name);
        }
    }

    private async Task<(TimingRow Each, TimingRow All, List<MemoryRow> Memory)> ConcurrentAsync(string image, CancellationToken ct)
    {
        var n = _options.Concurrent;
        var names = Enumerable.Range(1, n).Select(i => $"bench-c{_run}-{i}").ToList();
        foreach (var name in names)
        {
            Track(Owner, name);
        }

        Log.Say($"starting {n} workspaces at once");
        var all = Stopwatch.StartNew();
        var results = await Task.WhenAll(names.Select(async name =>
        {
            var sw = Stopwatch.StartNew();
            try
            {
                var w = await _manager.UpAsync(Request(name, image), null, ct);
                return (Name: name, Seconds: sw.Elapsed.TotalSeconds, Workspace: (Workspace?)w, Error: (string?)null);
            }
            catch (DsvmException ex)
            {
                Log.Warn($"{name} failed: {ex.Message}");
                return (Name: name, Seconds: sw.Elapsed.TotalSeconds, Workspace: (Workspace?)null, Error: FirstLine(ex.Message));
            }
        }));
        all.Stop();
        var ready = results.Where(r => r.Workspace is not null).ToList();
        var failed = results.Where(r => r.Error is not null).ToList();
        Log.Say($"{ready.Count} of {n} ready in {all.Elapsed.TotalSeconds:0.00} s");

        var each = new TimingRow($"up, {n} at once: each (Task.WhenAll, {Size})", Summary.Of(ready.Select(r => r.Seconds)), failed.Count,
            failed.Count == 0 ? null : "first failure: " + failed[0].Error);
        var total = new TimingRow($"up, {n} at once: all ready (wall)", failed.Count == n ? null : Summary.Of([all.Elapsed.TotalSeconds]), failed.Count,
            failed.Count == 0 ? null : $"{ready.Count} of {n} became ready");

        var memory = new List<MemoryRow>();
        if (ready.Count > 0)
        {
            Log.Say("waiting 10 s for the workspaces to settle, then reading their memory");
            await Task.Delay(TimeSpan.FromSeconds(10), ct);
            memory.Add(await DockerStatsAsync(ready.Select(r => $"dsvm-{Owner}-{r.Name}").ToList(), ct));
            memory.Add(CgroupMemory(ready.Select(r => r.Workspace!.ContainerId).OfType<string>().ToList()));
        }

        return (each, total, memory);
    }

    /// <summary><c>docker stats --no-stream</c>: the engine's own figure (usage less the inactive page cache).</summary>
    private async Task<MemoryRow> DockerStatsAsync(List<string> containers, CancellationToken ct)
    {
        const string source = "docker stats (MemUsage)";
        var r = await _images.Docker.RunAsync(["stats", "--no-stream", "--format", "{{.Name}} {{.MemUsage}}", .. containers], ct);
        if (!r.Ok)
        {
            return new MemoryRow(source, null, "docker stats failed: " + r.Tail(1));
        }

        var mib = new List<double>();
        foreach (var line in r.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var parts = line.Split(' ', 3, StringSplitOptions.RemoveEmptyEntries);
            if (parts.Length >= 2 && containers.Contains(parts[0]) && ParseMiB(parts[1]) is { } v)
            {
                mib.Add(v);
            }
        }

        return new MemoryRow(source, Summary.Of(mib), mib.Count == containers.Count ? null : $"{mib.Count} of {containers.Count} containers read");
    }

    /// <summary>cgroup v1 <c>memory.usage_in_bytes</c> of each container (page cache included, so higher).</summary>
    private static MemoryRow CgroupMemory(List<string> containerIds)
    {
        const string source = "cgroup v1 memory.usage_in_bytes";
        var mib = new List<double>();
        foreach (var id in containerIds)
        {
            var file = $"/sys/fs/cgroup/memory/docker/{id}/memory.usage_in_bytes";
            try
            {
                if (File.Exists(file) && long.TryParse(File.ReadAllText(file).Trim(), CultureInfo.InvariantCulture, out var bytes))
                {
                    mib.Add(bytes / (1024.0 * 1024));
                }
            }
            catch (IOException)
            {
                // The container went away between the listing and the read.
            }
        }

        return new MemoryRow(source, Summary.Of(mib),
            mib.Count == 0 ? "not readable here (cgroup v2, or the systemd cgroup driver)" : "includes the page cache");
    }

    /// <summary>"123.4MiB" or "1.2GiB" (docker stats units) in MiB.</summary>
    internal static double? ParseMiB(string value)
    {
        var m = SizeText().Match(value);
        if (!m.Success)
        {
            return null;
        }

        var n = double.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture);
        return m.Groups[2].Value switch
        {
            "B" => n / (1024 * 1024),
            "KiB" => n / 1024,
            "kB" or "KB" => n * 1000 / (1024 * 1024),
            "MiB" => n,
            "MB" => n * 1e6 / (1024 * 1024),
            "GiB" => n * 1024,
            "GB" => n * 1e9 / (1024 * 1024),
            "TiB" => n * 1024 * 1024,
            _ => null,
        };
    }

    [GeneratedRegex(@"^([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]+)$")]
    private static partial Regex SizeText();

    private void Track(string owner, string name)
    {
        lock (_liveGate)
        {
            _live.Add((owner, name));
        }
    }

    /// <summary>Deletes one workspace with its home; never throws (a missing one is fine).</summary>
    private async Task DeleteAsync(string owner, string name)
    {
        try
        {
            await _manager.DeleteAsync(owner, name, deleteHome: true, null, CancellationToken.None);
        }
        catch (NotFoundException)
        {
            // Never recorded (it failed before), or deleted already.
        }
        catch (DsvmException ex)
        {
            Log.Warn($"could not delete {owner}/{name}: {ex.Message}");
            _notes.Add($"could not delete {owner}/{name}: {FirstLine(ex.Message)}");
            return;
        }

        lock (_liveGate)
        {
            _live.Remove((owner, name));
        }
    }

    private async Task DeleteAllAsync()
    {
        List<(string Owner, string Name)> left;
        lock (_liveGate)
        {
            left = [.. _live];
        }

        if (left.Count > 0)
        {
            Log.Say($"deleting {left.Count} workspaces and their homes");
        }

        // A few at a time: each delete removes a container and a volume.
        using var gate = new SemaphoreSlim(4);
        await Task.WhenAll(left.Select(async w =>
        {
            await gate.WaitAsync();
            try
            {
                await DeleteAsync(w.Owner, w.Name);
            }
            finally
            {
                gate.Release();
            }
        }));
    }

    /// <summary>Workspaces a killed earlier run left in the benchmark's own records (never anybody else's).</summary>
    private async Task DeleteLeftoversAsync()
    {
        var left = (await _store.ListAsync(null, CancellationToken.None))
            .Where(w => w.Owner == Owner || (w.Owner == CliOwner && w.Name.StartsWith("bench-", StringComparison.Ordinal)))
            .ToList();
        foreach (var w in left)
        {
            Log.Say($"deleting {w.Owner}/{w.Name}, left by an earlier run");
            Track(w.Owner, w.Name);
        }

        if (left.Count > 0)
        {
            await DeleteAllAsync();
        }
    }

    private static string FirstLine(string message) => message.Split('\n')[0];
}
