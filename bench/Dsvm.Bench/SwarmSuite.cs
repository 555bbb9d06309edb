using System.Diagnostics;
using Dsvm.Core;
using Dsvm.Core.Sizes;
using Dsvm.Core.Specs;
using Dsvm.Core.Workspaces;
using Dsvm.Data;
using Dsvm.Docker;
using Dsvm.Images;
using Dsvm.Swarm;
using Dsvm.Testing;

namespace Dsvm.Bench;

internal sealed record SwarmSuiteResult(List<TimingRow> Timings, List<string> Notes);

/// <summary>
/// Time to start N workspaces (the minimal environment, a tiny size, P at a time through
/// <see cref="WorkspaceManager.UpAsync"/>) on one engine (the Docker backend) and on the 3-node swarm lab
/// (tests/swarm/swarm-lab.sh: namespaces on this machine, so both share its CPUs). The lab is built first and torn
/// down at the end; the image is pushed to the lab's registry and pulled on every node before anything is timed.
/// </summary>
internal sealed class SwarmSuite(BenchOptions options, BenchHome home, ImageServices images)
{
    private const string Owner = "benchsw";
    private static readonly MachineSize Tiny = new("bench-tiny", 0.18, 0.25, 0, SizeClass.General, "benchmark size");
    private static readonly HttpClient Http = HttpReadinessProbe.CreateClient();

    private readonly List<string> _notes = [];

    public async Task<SwarmSuiteResult> RunAsync(CancellationToken ct)
    {
        if (SwarmLab.SkipReason() is { } why)
        {
            throw new EnvironmentNotReadyException($"the swarm suite cannot run: {why}");
        }

        var timings = new List<TimingRow>();
        var latest = await LatestTag.CaptureAsync(images.Docker, "minimal", ct);
        var image = await WorkspaceSuite.EnsureMinimalImageAsync(home, images, latest, _notes, ct);
        var sizes = new SizeCatalog([.. SizeCatalog.Defaults, Tiny]);
        var wsOptions = new WorkspaceOptions { StartTimeout = TimeSpan.FromSeconds(600), PollInterval = TimeSpan.FromMilliseconds(200) };
        try
        {
            // One engine: the plain Docker backend on this host.
            var dockerPaths = Fresh("docker");
            var gpus = new NoGpus();
            var docker = new WorkspaceManager(new DockerWorkspaceBackend(new DockerBackendOptions(), gpus), new SqliteWorkspaceStore(dockerPaths.Database),
                sizes, gpus, new HttpReadinessProbe(Http), dockerPaths, TimeProvider.System, wsOptions);
            timings.AddRange(await FleetAsync("one engine (docker backend)", docker, image, ct));

            Log.Say("building the 3-node swarm lab");
            await using var lab = await SwarmLab.StartAsync(home.RepoRoot, ct);
            using var backend = new SwarmWorkspaceBackend(new SwarmBackendOptions
            {
                ManagerEndpoint = SwarmLab.ManagerEndpoint, Registry = SwarmLab.Registry, PushRegistry = SwarmLab.PushRegistry,
                NodeEngines = SwarmLab.NodeEngines,
            });
            var sw = Stopwatch.StartNew();
            await backend.PushImageAsync(image, ct);
            timings.Add(new TimingRow("swarm: push the image to the lab registry", Summary.Of([sw.Elapsed.TotalSeconds]), 0));
            var pull = await SwarmLab.PullEverywhereAsync(backend.NodeImage(image), ct);
            timings.Add(new TimingRow("swarm: pull it on 3 nodes at once", Summary.Of([pull.TotalSeconds]), 0));
            var swarmPaths = Fresh("swarm");
            var swarm = new WorkspaceManager(backend, new SqliteWorkspaceStore(swarmPaths.Database), sizes, gpus, new HttpReadinessProbe(Http),
                swarmPaths, TimeProvider.System, wsOptions);
            timings.AddRange(await FleetAsync("3-node swarm (swarm backend)", swarm, image, ct));
            await images.Docker.RunAsync(["rmi", $"{SwarmLab.PushRegistry}/{image}"], CancellationToken.None);
        }
        finally
        {
            if (await latest.RestoreAsync() is { } problem)
            {
                _notes.Add(problem);
            }
        }

        _notes.Add($"{options.SwarmWorkspaces} workspaces of {Tiny.Vcpus} vCPU / 256 MiB, {options.SwarmParallel} starts at a time; "
            + "the swarm's nodes are namespaces of this machine, so both rows share its CPUs: the swarm row measures the backend's "
            + "overhead (scheduling, task polling), not more hardware.");
        return new SwarmSuiteResult(timings, _notes);
    }

    private DsvmPaths Fresh(string name)
    {
        var root = Path.Combine(home.Root, "swarm-suite", name);
        if (Directory.Exists(root))
        {
            Directory.Delete(root, recursive: true);
        }

        return new DsvmPaths(Path.Combine(root, "data"), Path.Combine(root, "cache")).EnsureCreated();
    }

    private async Task<List<TimingRow>> FleetAsync(string label, WorkspaceManager manager, string image, CancellationToken ct)
    {
        var n = options.SwarmWorkspaces;
        Log.Say($"{label}: starting {n} workspaces, {options.SwarmParallel} at a time");
        var each = new List<double>();
        var failures = new List<string>();
        var all = Stopwatch.StartNew();
        await Parallel.ForEachAsync(Enumerable.Range(1, n), new ParallelOptions { MaxDegreeOfParallelism = options.SwarmParallel, CancellationToken = ct },
            async (i, token) =>
            {
                var sw = Stopwatch.StartNew();
                try
                {
                    await manager.UpAsync(new CreateWorkspaceRequest
                    {
                        Name = $"s{i:00}", Owner = Owner, OwnerId = WorkspaceIds.LocalOwnerId, Environment = "minimal", Image = image, GpuMode = GpuMode.None, Size = Tiny.Name,
                    }, null, token);
                    lock (each)
                    {
                        each.Add(sw.Elapsed.TotalSeconds);
                    }
                }
                catch (DsvmException ex)
                {
                    lock (failures)
                    {
                        failures.Add(ex.Message.Split('\n')[0]);
                    }
                }
            });
        all.Stop();
        Log.Say($"{label}: {each.Count} of {n} ready in {all.Elapsed.TotalSeconds:0.0} s; deleting them");
        await Parallel.ForEachAsync(Enumerable.Range(1, n), new ParallelOptions { MaxDegreeOfParallelism = 6 }, async (i, _) =>
        {
            try
            {
                await manager.DeleteAsync(Owner, $"s{i:00}", deleteHome: true, null, CancellationToken.None);
            }
            catch (DsvmException)
            {
                // Never recorded, or gone already.
            }
        });
        var note = failures.Count == 0 ? null : $"{failures.Count} failed; first: {failures[0]}";
        return
        [
            new TimingRow($"{label}: each of {n}", Summary.Of(each), failures.Count, note),
            new TimingRow($"{label}: all {n} ready (wall)", each.Count == 0 ? null : Summary.Of([all.Elapsed.TotalSeconds]), failures.Count),
        ];
    }

    private sealed class NoGpus : IGpuDetector
    {
        public Task<IReadOnlyList<GpuInfo>> DetectAsync(CancellationToken ct) => Task.FromResult<IReadOnlyList<GpuInfo>>([]);
    }
}
