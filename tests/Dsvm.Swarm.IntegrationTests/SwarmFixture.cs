using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net.Http.Headers;
using Dsvm.Core;
using Dsvm.Core.Sizes;
using Dsvm.Core.Specs;
using Dsvm.Core.Workspaces;
using Dsvm.Data;
using Dsvm.Testing;

namespace Dsvm.Swarm.IntegrationTests;

/// <summary>Skipped with a visible reason where the lab cannot run (not root, no engine, no docker-registry); never under test.sh.</summary>
public sealed class SwarmFactAttribute : FactAttribute
{
    public SwarmFactAttribute()
    {
        if (SwarmFixture.SkipReason is { } reason)
        {
            Skip = reason;
        }
    }
}

[CollectionDefinition("swarm")]
public sealed class SwarmCollection : ICollectionFixture<SwarmFixture>;

/// <summary>
/// The 3-node swarm lab, the minimal image, and the real lifecycle engine (SQLite store, HTTP readiness) over the
/// swarm backend. The 30-workspace fleet is started once, on first use, and shared by the tests that need it.
/// </summary>
public sealed class SwarmFixture : IAsyncLifetime
{
    public const string Owner = "sw";

    /// <summary>
    /// Tiny enough for 30 on 3 nodes of 2 CPUs (30 x 0.15 = 4.5 CPUs reserved of 6), leaving each node room for the
    /// other tests' workspaces while the fleet runs (the isolation test puts two on one node; with 0.18 it found
    /// "insufficient resources" there in CI).
    /// </summary>
    public static readonly MachineSize Tiny = new("swarm-tiny", 0.15, 0.25, 0, SizeClass.General, "test size");

    public static string? SkipReason =>
        Environment.GetEnvironmentVariable("DSVM_REQUIRE_DOCKER") == "1" ? null : TestEnvironment.DockerSkipReason ?? SwarmLab.SkipReason();

    public static readonly HttpClient Http = HttpReadinessProbe.CreateClient();

    private SwarmLab? _lab;
    private Lazy<Task<Fleet>>? _fleet;

    /// <summary>The lab itself (null when the tests are skipped).</summary>
    public SwarmLab Lab => _lab!;

    public SwarmWorkspaceBackend Backend { get; private set; } = null!;
    public WorkspaceManager Manager { get; private set; } = null!;
    public SqliteWorkspaceStore Store { get; private set; } = null!;

    /// <summary>The state file behind <see cref="Store"/>.</summary>
    public string DatabasePath { get; private set; } = "";
    public string Image { get; private set; } = "";
    public TimeSpan PushTime { get; private set; }
    public TimeSpan PullTime { get; private set; }

    /// <summary>The fixture's data and cache folders.</summary>
    public DsvmPaths Paths { get; private set; } = null!;

    /// <summary>The swarm backend's settings for the lab: its manager, registry (as nodes and as the host see it), node engines.</summary>
    public static SwarmBackendOptions LabOptions => new()
    {
        ManagerEndpoint = SwarmLab.ManagerEndpoint,
        Registry = SwarmLab.Registry,
        PushRegistry = SwarmLab.PushRegistry,
        NodeEngines = SwarmLab.NodeEngines,
    };

    /// <summary>A lifecycle engine over <paramref name="backend"/> and <paramref name="store"/> with the tests' sizes, no GPUs and HTTP readiness.</summary>
    public static WorkspaceManager NewManager(IWorkspaceBackend backend, IWorkspaceStore store, DsvmPaths paths, WorkspaceOptions options) =>
        new(backend, store, new SizeCatalog([.. SizeCatalog.Defaults, Tiny]), new NoGpus(), new HttpReadinessProbe(Http), paths, TimeProvider.System, options);

    public async Task InitializeAsync()
    {
        if (SkipReason is not null)
        {
            return;
        }

        var build = BuiltEnvironment.GetAsync("minimal");
        _lab = await SwarmLab.StartAsync(TestEnvironment.RepoRoot, CancellationToken.None);
        Image = (await build).Record.Image;
        var home = Path.Combine(TestEnvironment.Home, "swarm");
        if (Directory.Exists(home))
        {
            Directory.Delete(home, recursive: true);
        }

        var paths = new DsvmPaths(Path.Combine(home, "data"), Path.Combine(home, "cache")).EnsureCreated();
        Backend = new SwarmWorkspaceBackend(LabOptions);
        DatabasePath = paths.Database;
        Paths = paths;
        Store = new SqliteWorkspaceStore(paths.Database);
        Manager = NewManager(Backend, Store, paths, new WorkspaceOptions { StartTimeout = TimeSpan.FromSeconds(300), PollInterval = TimeSpan.FromMilliseconds(200) });
        // Distribute the image once, outside any start timeout: push (the backend's own path), then pull on every node.
        var sw = Stopwatch.StartNew();
        await Backend.PushImageAsync(Image, CancellationToken.None);
        PushTime = sw.Elapsed;
        PullTime = await SwarmLab.PullEverywhereAsync(Backend.NodeImage(Image), CancellationToken.None);
        _fleet = new Lazy<Task<Fleet>>(() => StartFleetAsync(30, 6));
    }

    public async Task DisposeAsync()
    {
        Backend?.Dispose();
        if (_lab is not null)
        {
            await _lab.DisposeAsync();
            // The push tagged the image for the loopback registry in the host engine: drop that tag only.
            if (!SwarmLab.Reuse)
            {
                await BuiltEnvironment.Services.Docker.RunAsync(["rmi", $"{SwarmLab.PushRegistry}/{Image}"], CancellationToken.None);
            }

            Directory.Delete(Path.Combine(TestEnvironment.Home, "swarm"), recursive: true);
        }
    }

    public Task<Fleet> FleetAsync() => _fleet!.Value;

    public Task<Workspace> UpAsync(string name, CancellationToken ct = default) =>
        Manager.UpAsync(new CreateWorkspaceRequest
        {
            Name = name, Owner = Owner, OwnerId = WorkspaceIds.LocalOwnerId, Environment = "minimal", Image = Image, GpuMode = GpuMode.None, Size = Tiny.Name,
        }, null, ct);

    /// <summary>Starts <paramref name="count"/> workspaces, <paramref name="parallel"/> at a time, timing each.</summary>
    private async Task<Fleet> StartFleetAsync(int count, int parallel)
    {
        var started = new ConcurrentBag<(Workspace W, TimeSpan Took)>();
        var failed = new ConcurrentBag<string>();
        var all = Stopwatch.StartNew();
        await Parallel.ForEachAsync(Enumerable.Range(1, count), new ParallelOptions { MaxDegreeOfParallelism = parallel }, async (i, ct) =>
        {
            var sw = Stopwatch.StartNew();
            try
            {
                started.Add((await UpAsync($"w{i:00}", ct), sw.Elapsed));
            }
            catch (DsvmException ex)
            {
                failed.Add($"w{i:00}: {ex.Message}");
            }
        });
        return new Fleet([.. started.OrderBy(s => s.W.Name)], [.. failed], all.Elapsed);
    }

    /// <summary>Jupyter's own status API with the workspace token, from the root namespace at node-ip:port.</summary>
    public static async Task<bool> AnswersAsync(Workspace w)
    {
        if (w.Endpoint is null)
        {
            return false;
        }

        using var req = new HttpRequestMessage(HttpMethod.Get, new Uri(new Uri(w.Endpoint), w.BaseUrl + "api/status"));
        req.Headers.Authorization = new AuthenticationHeaderValue("token", w.Token);
        try
        {
            using var resp = await Http.SendAsync(req);
            return resp.IsSuccessStatusCode;
        }
        catch (HttpRequestException)
        {
            return false;
        }
        catch (TaskCanceledException)
        {
            return false;
        }
    }

    public static string NodeOf(Workspace w) =>
        System.Text.Json.JsonDocument.Parse(w.BackendState).RootElement.GetProperty("node").GetString()!;

    internal sealed class NoGpus : IGpuDetector
    {
        public Task<IReadOnlyList<GpuInfo>> DetectAsync(CancellationToken ct) => Task.FromResult<IReadOnlyList<GpuInfo>>([]);
    }
}

public sealed record Fleet(IReadOnlyList<(Workspace W, TimeSpan Took)> Started, IReadOnlyList<string> Failed, TimeSpan Total);
