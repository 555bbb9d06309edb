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
/// Issue 11's compute benchmark: inside a real workspace of each size that fits this host, a 2000×2000 matmul, a
/// RandomForest fit and 20 small torch training steps, side by side with the same code in a baseline image (by
/// default the same image with the reference BLAS selected, as before OpenBLAS; or the previous build), in interleaved rounds (order rotated per round). Both sides run
/// with the thread variables the current image's start script derives from the size, so the comparison is of the
/// libraries (BLAS, torch), not of thread counts. Every workspace it makes (owner <c>bench</c>) is deleted with its home.
/// </summary>
internal sealed partial class ComputeSuite
{
    private const string Owner = "bench";
    private const string Environment = "datascience";

    private static readonly string[] Measures = ["matmul2000", "rf", "torch20"];
    private static readonly HttpClient Http = new() { Timeout = TimeSpan.FromSeconds(5) };

    private readonly BenchOptions _options;
    private readonly ImageServices _images;
    private readonly WorkspaceManager _manager;
    private readonly DockerWorkspaceBackend _backend;
    private readonly string _run = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(2));
    private readonly List<string> _live = [];
    private readonly string _code;

    public ComputeSuite(BenchOptions options, BenchHome home, ImageServices images)
    {
        _options = options;
        _images = images;
        _code = File.ReadAllText(Path.Combine(home.RepoRoot, "bench", "compute-workload.py"));
        var gpus = new NvidiaGpuDetector();
        _backend = new DockerWorkspaceBackend(new DockerBackendOptions(), gpus);
        _manager = new WorkspaceManager(_backend, new SqliteWorkspaceStore(home.Paths.Database), SizeCatalog.Load(null), gpus,
            new HttpReadinessProbe(Http), home.Paths, TimeProvider.System, new WorkspaceOptions { StartTimeout = TimeSpan.FromSeconds(300) });
    }

    public async Task<int> RunAsync(CancellationToken ct)
    {
        var current = _options.ComputeImage ?? $"dsvm/{Environment}:latest";
        var baseline = _options.BaselineImage is null or "netlib"
            ? await NetlibVariantAsync(current, ct)
            : _options.BaselineImage == "previous"
                ? await PreviousBuildAsync(current, ct) ?? throw new DsvmException($"no earlier dsvm/{Environment} image than {current} on this engine: pass --baseline IMAGE")
                : _options.BaselineImage;
        var cap = await _backend.GetCapacityAsync(ct);
        var sizes = _manager.Sizes.All.Where(s => s.Gpus == 0 && SizeCatalog.WhyNot(s, cap with { Gpus = 0 }) is null).ToList();
        Log.Say($"compute suite: {current} vs {baseline}; sizes {string.Join(", ", sizes.Select(s => s.Name))}; {_options.Rounds} rounds");

        // (size, side) -> measure -> per-round seconds
        var results = new Dictionary<(string Size, string Side), Dictionary<string, List<double>>>();
        var notes = new List<string>();
        try
        {
            foreach (var size in sizes)
            {
                var sides = new (string Side, string Image)[] { ("current", current), ("baseline", baseline) };
                var names = new Dictionary<string, Workspace>();
                foreach (var (side, image) in sides)
                {
                    var name = $"cmp-{_run}-{size.Name}-{side}";
                    if (name.Length > 40)
                    {
                        name = name[..40];
                    }

                    _live.Add(name);
                    names[side] = await _manager.UpAsync(new CreateWorkspaceRequest
                    {
                        Name = name, Owner = Owner, OwnerId = WorkspaceIds.LocalOwnerId, Environment = Environment, Image = image, GpuMode = GpuMode.None, Size = size.Name,
                    }, null, ct);
                    results[(size.Name, side)] = Measures.ToDictionary(m => m, _ => new List<double>());
                }

                for (var round = 0; round < _options.Rounds; round++)
                {
                    var order = round % 2 == 0 ? sides : sides.Reverse().ToArray();
                    foreach (var (side, _) in order)
                    {
                        var line = await MeasureAsync(names[side], size, ct);
                        if (line is null)
                        {
                            notes.Add($"{size.Name} {side} round {round + 1}: the workload did not print its line");
                            continue;
                        }

                        foreach (var (measure, seconds) in line)
                        {
                            results[(size.Name, side)][measure].Add(seconds);
                        }

                        Log.Say($"  {size.Name} {side} round {round + 1}: {string.Join(", ", line.Select(kv => $"{kv.Key} {kv.Value:0.000} s"))}");
                    }
                }

                foreach (var w in names.Values)
                {
                    await DeleteAsync(w.Name);
                }
            }
        }
        finally
        {
            foreach (var name in _live.ToList())
            {
                await DeleteAsync(name);
            }
        }

        Console.WriteLine($"## Compute: {current} vs baseline {baseline} ({_options.Rounds} interleaved rounds, medians; seconds, lower is better)");
        Console.WriteLine();
        Console.WriteLine("| size | measure | current s | baseline s | baseline / current (speed-up) |");
        Console.WriteLine("|---|---|---|---|---|");
        foreach (var size in sizes)
        {
            foreach (var measure in Measures)
            {
                var c = Median(results[(size.Name, "current")][measure]);
                var b = Median(results[(size.Name, "baseline")][measure]);
                Console.WriteLine($"| {size.Name} ({size.Vcpus.ToString(CultureInfo.InvariantCulture)} vCPU) | {measure} | {F(c)} | {F(b)} | {(c is > 0 && b is not null ? (b.Value / c.Value).ToString("0.00", CultureInfo.InvariantCulture) + "×" : "–")} |");
            }
        }

        foreach (var n in notes)
        {
            Console.WriteLine($"- {n}");
        }

        return 0;
    }

    /// <summary>One run of the workload in the workspace, with the thread variables of its size (as dsvm-start sets them).</summary>
    private async Task<Dictionary<string, double>?> MeasureAsync(Workspace w, MachineSize size, CancellationToken ct)
    {
        var threads = Math.Max(1, (int)Math.Floor(size.Vcpus)).ToString(CultureInfo.InvariantCulture);
        var vars = new[] { "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS", "NUMBA_NUM_THREADS" }.Select(v => $"{v}={threads}");
        var result = await _backend.ExecAsync(w.Handle, new WorkspaceExecRequest
        {
            Command = ["env", .. vars, "python3", "-c", _code],
            Timeout = TimeSpan.FromMinutes(10),
        }, ct);
        var m = LinePattern().Match(result.Stdout);
        if (result.ExitCode != 0 || !m.Success)
        {
            Log.Warn($"{w.Name}: exit {result.ExitCode}: {result.Stderr.Trim().Split('\n').LastOrDefault()}");
            return null;
        }

        return Measures.Select((name, i) => (name, double.Parse(m.Groups[i + 1].Value, CultureInfo.InvariantCulture))).ToDictionary(x => x.name, x => x.Item2);
    }

    /// <summary>
    /// The same image with Debian's BLAS/LAPACK alternatives switched back to the reference (netlib) libraries, as
    /// the image was before OpenBLAS: built once per image ID (tag <c>dsvm-bench/netlib:ID</c>), from the Debian mirror.
    /// </summary>
    private async Task<string> NetlibVariantAsync(string current, CancellationToken ct)
    {
        var inspect = await _images.Docker.RunAsync(["image", "inspect", "--format", "{{.Id}}|{{.Config.User}}", current], ct);
        if (!inspect.Ok)
        {
            throw new DsvmException($"{current} is not on this engine: build it (dsvm env build {Environment}) or pass --image");
        }

        var (id, user) = (inspect.Stdout.Trim().Split('|')[0], inspect.Stdout.Trim().Split('|')[1]);
        var tag = $"dsvm-bench/netlib:{id.Replace("sha256:", "", StringComparison.Ordinal)[..16]}";
        if (await _images.Docker.ImageExistsAsync(tag, ct))
        {
            return tag;
        }

        Log.Say($"building {tag}: {current} with the reference BLAS/LAPACK selected");
        var dockerfile = $"""
            FROM {current}
            USER root
            RUN apt-get update && apt-get install -y --no-install-recommends libblas3 liblapack3 \
             && update-alternatives --set libblas.so.3-x86_64-linux-gnu /usr/lib/x86_64-linux-gnu/blas/libblas.so.3 \
             && update-alternatives --set liblapack.so.3-x86_64-linux-gnu /usr/lib/x86_64-linux-gnu/lapack/liblapack.so.3 \
             && rm -rf /var/lib/apt/lists/*
            USER {(user.Length > 0 ? user : "root")}
            """;
        using var stdin = new MemoryStream(System.Text.Encoding.UTF8.GetBytes(dockerfile));
        var build = await _images.Docker.RunAsync(["build", "-q", "-t", tag, "-"], ct, stdin);
        return build.Ok ? tag : throw new DsvmException($"building {tag} failed: {build.Stderr.Trim().Split('\n').LastOrDefault()}");
    }

    /// <summary>The newest image of the environment built before the current one (by creation time), if the engine still has one.</summary>
    private async Task<string?> PreviousBuildAsync(string current, CancellationToken ct)
    {
        var inspect = await _images.Docker.RunAsync(["image", "inspect", "--format", "{{.Id}}", current], ct);
        if (!inspect.Ok)
        {
            throw new DsvmException($"{current} is not on this engine: build it (dsvm env build {Environment}) or pass --image");
        }

        var currentId = inspect.Stdout.Trim();
        var list = await _images.Docker.RunAsync(["images", $"dsvm/{Environment}", "--no-trunc", "--format", "{{.Repository}}:{{.Tag}} {{.ID}} {{.CreatedAt}}"], ct);
        var images = list.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(l => l.Split(' ', 3))
            .Where(f => f.Length == 3 && !f[0].EndsWith(":<none>", StringComparison.Ordinal))
            // "2026-12-06 01:23:45 +0000 UTC"
            .Select(f => (Image: f[0], Id: f[1], At: CreatedAt(f[2])))
            .ToList();
        var currentAt = images.Where(x => x.Id == currentId).Select(x => x.At).DefaultIfEmpty(DateTimeOffset.MaxValue).First();
        return images.Where(x => x.Id != currentId && x.At < currentAt).OrderByDescending(x => x.At).Select(x => x.Image).FirstOrDefault();
    }

    private async Task DeleteAsync(string name)
    {
        _live.Remove(name);
        try
        {
            await _manager.DeleteAsync(Owner, name, deleteHome: true, null, CancellationToken.None);
        }
        catch (NotFoundException)
        {
        }
    }

    /// <summary>docker's CreatedAt: "2026-12-06 01:23:45 +0000 UTC".</summary>
    private static DateTimeOffset CreatedAt(string text)
    {
        var local = DateTime.ParseExact(text[..19], "yyyy-MM-dd HH:mm:ss", CultureInfo.InvariantCulture);
        var sign = text[20] == '-' ? -1 : 1;
        var offset = new TimeSpan(int.Parse(text[21..23], CultureInfo.InvariantCulture), int.Parse(text[23..25], CultureInfo.InvariantCulture), 0) * sign;
        return new DateTimeOffset(local, offset);
    }

    private static double? Median(List<double> xs) => xs.Count == 0 ? null : xs.Order().ElementAt(xs.Count / 2);

    private static string F(double? x) => x?.ToString("0.000", CultureInfo.InvariantCulture) ?? "–";

    [GeneratedRegex(@"matmul2000 ([0-9.]+) rf ([0-9.]+) torch20 ([0-9.]+)")]
    private static partial Regex LinePattern();
}
