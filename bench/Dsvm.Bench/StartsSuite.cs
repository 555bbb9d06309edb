using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Net.Sockets;
using System.Security.Cryptography;
using Dsvm.Core;
using Dsvm.Core.Sizes;
using Dsvm.Core.Specs;
using Dsvm.Core.Workspaces;
using Dsvm.Data;
using Dsvm.Docker;
using Dsvm.Hub;
using Dsvm.Hub.Services;
using Dsvm.Images;

namespace Dsvm.Bench;

/// <summary>
/// Issue 13, goals 2 and 3: a workspace start, and a class start (N at once), each until Jupyter answers, side by side
/// with the floor, in interleaved rounds (the order rotated per round), reported as per-round ratios and their medians.
/// The floor is <c>docker run -d</c> of the same container (image, user, environment, limits, network, a fresh home
/// volume, the port on 127.0.0.1) and then <c>{base}api/status</c> every 50 ms until it answers; OpenDSVM is the
/// <c>dsvm up</c> process (it returns when its own probe sees Jupyter answer) and the hub (the real
/// <c>HubHost</c> with the Docker backend, in this process: POST, then the same status URL through the hub's proxy with
/// the user's API token, every 50 ms, until it answers).
/// </summary>
internal sealed class StartsSuite(BenchOptions options, BenchHome home, ImageServices images) : IDisposable
{
    private const string Environment = WorkspaceSuite.Environment;
    private const string Size = "small";
    private const string Label = "io.opendsvm.bench=starts";
    private static readonly TimeSpan Poll = TimeSpan.FromMilliseconds(50);
    private static readonly TimeSpan Bound = TimeSpan.FromMinutes(5);

    private readonly List<string> _notes = [];
    private readonly string _run = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(2));
    private readonly HttpClient _probe = new(new SocketsHttpHandler { UseCookies = false, UseProxy = false, AllowAutoRedirect = false }) { Timeout = TimeSpan.FromSeconds(5) };
    private string _image = "";
    private int _seq;

    private sealed record Hub(Uri Address, HttpClient Api, string User);

    public void Dispose() => _probe.Dispose();

    public async Task<int> RunAsync(CancellationToken ct)
    {
        await images.Docker.EnsureEngineAsync(ct);
        var latest = await LatestTag.CaptureAsync(images.Docker, Environment, ct);
        var cliDll = options.CliDll ?? Path.Combine(home.RepoRoot, "src", "Dsvm.Cli", "bin", "Release", "net10.0", "dsvm.dll");
        if (!File.Exists(cliDll))
        {
            throw new DsvmException($"{cliDll} is missing (build src/Dsvm.Cli in Release, or use bench/run.sh)");
        }

        var store = new SqliteWorkspaceStore(home.Paths.Database);
        var gpus = new NvidiaGpuDetector();
        var hubOptions = HubStarts.Options();
        var rows = new List<(int Round, string Case, string Target, double? Seconds, string? Error)>();
        Microsoft.AspNetCore.Builder.WebApplication? app = null;
        Hub? hub = null;
        try
        {
            _image = await WorkspaceSuite.EnsureMinimalImageAsync(home, images, latest, _notes, ct);
            app = HubHost.Build(hubOptions, new HubDependencies
            {
                Backend = new DockerWorkspaceBackend(new DockerBackendOptions(), gpus),
                Store = store,
                Gpus = gpus,
                Environments = new StaticEnvironmentCatalog([new HubEnvironment(Environment, _image, GpuMode.None, Environment, 0)]),
                Paths = home.Paths,
                WorkspaceOptions = new WorkspaceOptions { StartTimeout = Bound },
            }, logging: _ => { });
            await HubHost.InitializeAsync(app, ct);
            await app.StartAsync(ct);
            var address = new Uri(app.Urls.First().TrimEnd('/') + "/");
            using (var admin = await HubSuite.LoginAsync(address, hubOptions.AdminName, hubOptions.AdminPassword!, ct))
            {
                var user = $"bench-st{_run}";
                hub = new Hub(address, HubSuite.TokenClient(address, await HubSuite.CreateUserWithTokenAsync(address, admin, user, ct)), user);
            }

            // Warm-up, not timed: the hub's first start (JIT, the workspace network), a CLI start, a bare container.
            Log.Say("starts suite: warm-up (one start each, not timed)");
            await HubStartsAsync(hub, 1, ct);
            await CliUpAsync(cliDll, ct);
            await FloorStartsAsync(1, ct);

            var classes = options.ClassSizes;
            for (var round = 1; round <= options.Rounds; round++)
            {
                var single = Rotate<(string Target, Func<Task<double>> Run)>(
                [
                    ("docker run", async () => await FloorStartsAsync(1, ct)),
                    ("dsvm up (CLI process)", () => CliUpAsync(cliDll, ct)),
                    ("hub (API + proxy)", async () => await HubStartsAsync(hub, 1, ct)),
                ], round);
                foreach (var (target, run) in single)
                {
                    rows.Add(await MeasureAsync(round, "one start", target, run));
                }

                foreach (var n in classes)
                {
                    var together = Rotate<(string Target, Func<Task<double>> Run)>(
                    [
                        ($"{n} × docker run", () => FloorStartsAsync(n, ct)),
                        ($"hub, {n} POSTs", () => HubStartsAsync(hub, n, ct)),
                    ], round);
                    foreach (var (target, run) in together)
                    {
                        rows.Add(await MeasureAsync(round, $"{n} at once", target, run));
                    }
                }
            }
        }
        finally
        {
            await CleanUpAsync(hub, store, gpus);
            hub?.Api.Dispose();
            if (app is not null)
            {
                await HubSuite.StopAsync(app);
            }

            if (await latest.RestoreAsync() is { } problem)
            {
                _notes.Add(problem);
            }
        }

        Print(rows);
        return 0;
    }

    private static async Task<(int, string, string, double?, string?)> MeasureAsync(int round, string @case, string target, Func<Task<double>> run)
    {
        try
        {
            var seconds = await run();
            Log.Say($"round {round}, {@case}, {target}: {seconds:0.00} s");
            return (round, @case, target, seconds, null);
        }
        catch (Exception ex) when (ex is DsvmException or HttpRequestException or TimeoutException or IOException)
        {
            Log.Warn($"round {round}, {@case}, {target}: {ex.Message}");
            return (round, @case, target, null, ex.Message.Split('\n')[0]);
        }
    }

    private static List<T> Rotate<T>(List<T> items, int round) =>
        [.. items.Skip((round - 1) % items.Count), .. items.Take((round - 1) % items.Count)];

    // ---------------------------------------------------------------- the floor: docker run

    /// <summary>N <c>docker run -d</c> at once, each then asked until Jupyter answers; the wall time until all have. Removed afterwards, untimed.</summary>
    private async Task<double> FloorStartsAsync(int n, CancellationToken ct)
    {
        var names = Enumerable.Range(0, n).Select(_ => $"bench-floor{_run}-{Interlocked.Increment(ref _seq)}").ToList();
        var sw = Stopwatch.StartNew();
        try
        {
            await Task.WhenAll(names.Select(async name =>
            {
                var token = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(32));
                var port = FreePort();
                var baseUrl = $"/user/bench/{name}/";
                var size = SizeCatalog.Load(null).Get(Size);
                var run = await images.Docker.RunAsync(
                [
                    "run", "-d", "--name", name, "--label", Label, "--hostname", name, "--user", DockerBackendOptions.User,
                    "--env", $"JUPYTER_TOKEN={token}", "--env", $"DSVM_BASE_URL={baseUrl}", "--env", $"DSVM_PORT={DockerBackendOptions.JupyterPort}",
                    "--env", $"DSVM_WORKSPACE={name}", "--env", $"DSVM_SIZE={Size}", "--env", $"HOME={DockerBackendOptions.HomePath}", "--env", "CUDA_VISIBLE_DEVICES=",
                    "--cpus", size.Vcpus.ToString(CultureInfo.InvariantCulture), "--memory", size.MemoryBytes.ToString(CultureInfo.InvariantCulture),
                    "--memory-swap", size.MemoryBytes.ToString(CultureInfo.InvariantCulture), "--pids-limit", "1024",
                    "--shm-size", Math.Min(size.MemoryBytes / 4, 2L << 30).ToString(CultureInfo.InvariantCulture),
                    "--cap-drop", "ALL", "--security-opt", "no-new-privileges", "--network", DockerNetworks.NameOf(size.Network),
                    "-p", $"127.0.0.1:{port}:{DockerBackendOptions.JupyterPort}", "--mount", $"type=volume,source={name}-home,target={DockerBackendOptions.HomePath}",
                    _image,
                ], ct);
                if (!run.Ok)
                {
                    throw new DsvmException($"docker run: {run.Tail(2)}");
                }

                await UntilAnswersAsync(new Uri($"http://127.0.0.1:{port}{baseUrl}api/status"), $"token {token}", ct);
            }));
            return sw.Elapsed.TotalSeconds;
        }
        finally
        {
            await images.Docker.RunAsync(["rm", "-f", "-v", .. names], CancellationToken.None);
            await images.Docker.RunAsync(["volume", "rm", "-f", .. names.Select(n => $"{n}-home")], CancellationToken.None);
        }
    }

    private static int FreePort()
    {
        using var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        return ((IPEndPoint)l.LocalEndpoint).Port;
    }

    // ---------------------------------------------------------------- the CLI process

    /// <summary>The wall time of <c>dotnet dsvm.dll up</c> (it returns when Jupyter answers); deleted with its home afterwards, untimed.</summary>
    private async Task<double> CliUpAsync(string cliDll, CancellationToken ct)
    {
        var name = $"bench-cli{_run}-{Interlocked.Increment(ref _seq)}";
        var sw = Stopwatch.StartNew();
        try
        {
            var (exit, output) = await DsvmAsync(cliDll, ["up", "--env", Environment, "--size", Size, "--name", name, "--output", "json"], ct);
            var seconds = sw.Elapsed.TotalSeconds;
            return exit == 0 ? seconds : throw new DsvmException($"dsvm up exited {exit}: {output}");
        }
        finally
        {
            await DsvmAsync(cliDll, ["rm", name, "--delete-home"], CancellationToken.None);
        }
    }

    private async Task<(int Exit, string Output)> DsvmAsync(string cliDll, string[] args, CancellationToken ct)
    {
        var psi = new ProcessStartInfo("dotnet") { WorkingDirectory = home.Root, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add(cliDll);
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }

        psi.Environment["DSVM_HOME"] = home.Root;
        psi.Environment["DSVM_ENVIRONMENTS"] = home.EnvironmentsRoot;
        using var process = Process.Start(psi) ?? throw new DsvmException("dotnet did not start");
        var stdout = process.StandardOutput.ReadToEndAsync(ct);
        var stderr = process.StandardError.ReadToEndAsync(ct);
        await process.WaitForExitAsync(ct);
        return (process.ExitCode, (await stdout + await stderr).Trim());
    }

    // ---------------------------------------------------------------- the hub

    /// <summary>N POSTs at once (after a 429, again when Retry-After says), each then asked through the proxy until Jupyter answers; the wall time until all have.</summary>
    private async Task<double> HubStartsAsync(Hub hub, int n, CancellationToken ct)
    {
        var names = Enumerable.Range(0, n).Select(_ => $"w{Interlocked.Increment(ref _seq)}").ToList();
        var sw = Stopwatch.StartNew();
        try
        {
            await Task.WhenAll(names.Select(async name =>
            {
                await HubStarts.PostAsync(hub.Api, name, Environment, Size, ct);
                await UntilAnswersAsync(new Uri(hub.Address, $"user/{hub.User}/{name}/api/status"), hub.Api.DefaultRequestHeaders.Authorization!.ToString(), ct);
            }));
            return sw.Elapsed.TotalSeconds;
        }
        finally
        {
            using var gate = new SemaphoreSlim(4);
            await Task.WhenAll(names.Select(async name =>
            {
                await gate.WaitAsync(CancellationToken.None);
                try
                {
                    using var r = await hub.Api.DeleteAsync($"api/v1/workspaces/{hub.User}/{name}?deleteHome=true", CancellationToken.None);
                }
                catch (HttpRequestException)
                {
                    // The clean-up at the end catches it.
                }
                finally
                {
                    gate.Release();
                }
            }));
        }
    }

    // ---------------------------------------------------------------- both

    /// <summary>Asks <paramref name="url"/> every 50 ms until it answers 200 (5 minutes at most).</summary>
    private Task UntilAnswersAsync(Uri url, string authorization, CancellationToken ct) => HubStarts.UntilAnswersAsync(_probe, url, authorization, Poll, Bound, ct);

    private async Task CleanUpAsync(Hub? hub, SqliteWorkspaceStore store, IGpuDetector gpus)
    {
        var left = await images.Docker.RunAsync(["ps", "-aq", "--filter", $"label={Label}"], CancellationToken.None);
        var ids = left.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        if (ids.Length > 0)
        {
            await images.Docker.RunAsync(["rm", "-f", "-v", .. ids], CancellationToken.None);
        }

        var manager = new WorkspaceManager(new DockerWorkspaceBackend(new DockerBackendOptions(), gpus), store, SizeCatalog.Load(null), gpus,
            new HttpReadinessProbe(), home.Paths, TimeProvider.System);
        foreach (var w in await store.ListAsync(null, CancellationToken.None))
        {
            if ((hub is not null && w.Owner == hub.User) || w.Name.StartsWith($"bench-cli{_run}-", StringComparison.Ordinal))
            {
                try
                {
                    await manager.DeleteAsync(w.Owner, w.Name, deleteHome: true, null, CancellationToken.None);
                }
                catch (DsvmException ex)
                {
                    _notes.Add($"could not delete {w.Owner}/{w.Name}: {ex.Message.Split('\n')[0]}");
                }
            }
        }
    }

    private void Print(List<(int Round, string Case, string Target, double? Seconds, string? Error)> rows)
    {
        var inv = CultureInfo.InvariantCulture;
        Console.WriteLine($"# starts suite: {options.Rounds} interleaved rounds, size {Size}, image {_image}");
        Console.WriteLine();
        Console.WriteLine("| case | target | per round (s) | median (s) | ratio to the floor, per round | median ratio |");
        Console.WriteLine("| --- | --- | --- | --- | --- | --- |");
        foreach (var group in rows.GroupBy(r => (r.Case, r.Target)))
        {
            var floorTarget = rows.First(r => r.Case == group.Key.Case).Case == "one start" ? "docker run" : $"{group.Key.Case.Split(' ')[0]} × docker run";
            var perRound = group.OrderBy(r => r.Round).ToList();
            var ratios = perRound
                .Select(r => (r.Seconds, Floor: rows.FirstOrDefault(f => f.Round == r.Round && f.Case == r.Case && f.Target == floorTarget).Seconds))
                .Where(x => x.Seconds is not null && x.Floor is > 0)
                .Select(x => x.Seconds!.Value / x.Floor!.Value)
                .ToList();
            var seconds = perRound.Where(r => r.Seconds is not null).Select(r => r.Seconds!.Value).ToList();
            var errors = perRound.Count(r => r.Error is not null);
            Console.WriteLine(string.Create(inv,
                $"| {group.Key.Case} | {group.Key.Target} | {string.Join(", ", perRound.Select(r => r.Seconds is { } s ? s.ToString("0.00", inv) : "failed"))} | {(seconds.Count > 0 ? Median(seconds).ToString("0.00", inv) : "-")} | {string.Join(", ", ratios.Select(x => x.ToString("0.00", inv)))} | {(ratios.Count > 0 ? Median(ratios).ToString("0.00", inv) + "×" : "-")}{(errors > 0 ? $" ({errors} failed: {perRound.First(r => r.Error is not null).Error})" : "")} |"));
        }

        foreach (var note in _notes)
        {
            Console.WriteLine();
            Console.WriteLine($"note: {note}");
        }
    }

    private static double Median(List<double> values)
    {
        var sorted = values.Order().ToList();
        return sorted.Count % 2 == 1 ? sorted[sorted.Count / 2] : (sorted[(sorted.Count / 2) - 1] + sorted[sorted.Count / 2]) / 2;
    }
}
