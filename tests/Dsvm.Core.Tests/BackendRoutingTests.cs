using Dsvm.Core.Sizes;
using Dsvm.Core.Specs;
using Dsvm.Core.Workspaces;
using Dsvm.Testing;

namespace Dsvm.Core.Tests;

public sealed class BackendConfigTests
{
    private const string File = "/etc/dsvm/backends.yaml";

    [Fact]
    public void Without_a_file_the_local_engine_is_the_default_and_qemu_is_there_by_name()
    {
        var config = BackendConfig.Load("/nonexistent/backends.yaml", TestBackendTypes.Registry);
        Assert.Equal("docker", config.Default);
        Assert.Equal(["docker", "qemu"], config.Backends.Select(b => b.Name));
        Assert.Empty(config.SizeRoutes);
    }

    [Fact]
    public void Parses_backends_types_settings_and_routes()
    {
        var config = BackendConfig.Parse("""
            default: docker
            backends:
              docker: {}
              swarm:
                manager: tcp://10.0.0.2:2376
                registry: 10.0.0.2:5000
              gpu-cluster: { type: kubernetes, namespace: dsvm }
            routes:
              sizes: { gpu-small: gpu-cluster }
              classes: { memory: swarm }
            """, File, TestBackendTypes.Registry);

        Assert.Equal("docker", config.Default);
        var swarm = config.Backends.Single(b => b.Name == "swarm");
        Assert.Equal("swarm", swarm.Type);
        Assert.Equal("tcp://10.0.0.2:2376", swarm.Get("manager"));
        var k8s = config.Backends.Single(b => b.Name == "gpu-cluster");
        Assert.Equal("kubernetes", k8s.Type);
        Assert.False(k8s.Settings.ContainsKey("type"));
        Assert.Equal("dsvm", k8s.Get("namespace"));
        Assert.Equal("gpu-cluster", config.SizeRoutes["gpu-small"]);
        Assert.Equal("swarm", config.ClassRoutes[SizeClass.Memory]);
    }

    [Fact]
    public void Reports_every_problem_at_once_with_line_and_key()
    {
        var ex = Assert.Throws<SpecValidationException>(() => BackendConfig.Parse("""
            defualt: docker
            backends:
              docker: {}
              cluster: { type: kubernets }
            routes:
              sizes: { gpu-small: nowhere }
              classes: { huge: docker }
            """, File, TestBackendTypes.Registry));

        var messages = ex.Errors.Select(e => e.ToString()).ToList();
        Assert.Contains(messages, m => m.StartsWith($"{File}:1:1: defualt: unknown key 'defualt'", StringComparison.Ordinal) && m.Contains("did you mean 'default'", StringComparison.Ordinal));
        Assert.Contains(messages, m => m.StartsWith($"{File}:4:", StringComparison.Ordinal) && m.Contains("backends.cluster.type: 'kubernets' is not a backend type", StringComparison.Ordinal)
            && m.Contains("'kubernetes'", StringComparison.Ordinal));
        Assert.Contains(messages, m => m.StartsWith($"{File}:6:", StringComparison.Ordinal) && m.Contains("routes.sizes.gpu-small: 'nowhere' is not a configured backend", StringComparison.Ordinal));
        Assert.Contains(messages, m => m.StartsWith($"{File}:7:", StringComparison.Ordinal) && m.Contains("'huge' is not a size class", StringComparison.Ordinal));
        Assert.Equal(4, ex.Errors.Count);
    }

    [Fact]
    public void Invalid_yaml_is_located()
    {
        var ex = Assert.Throws<SpecValidationException>(() => BackendConfig.Parse("backends:\n  docker: [unclosed\n", File, TestBackendTypes.Registry));
        Assert.Contains("not valid YAML", ex.Message, StringComparison.Ordinal);
        Assert.StartsWith(File + ":", ex.Errors[0].ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void A_route_to_a_size_that_does_not_exist_is_refused()
    {
        var config = BackendConfig.Parse("backends: { docker: {} }\nroutes: { sizes: { gpu-huge: docker } }\n", File, TestBackendTypes.Registry);
        var ex = Assert.Throws<SpecValidationException>(() => config.CheckSizes(SizeCatalog.Load(null)));
        Assert.Contains("routes.sizes.gpu-huge: no size 'gpu-huge'", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Section_errors_point_at_the_setting()
    {
        var config = BackendConfig.Parse("backends:\n  docker:\n    endpoint: nope\n", File, TestBackendTypes.Registry);
        var error = config.Backends[0].Error("endpoint", "bad");
        Assert.Equal($"{File}:3:15: backends.docker.endpoint: bad", error.ToString());
    }
}

public sealed class WorkspaceBackendsTests : IDisposable
{
    private readonly TempDir _dir = new();
    private readonly FakeBackend _local = new() { Name = "docker" };
    private readonly FakeBackend _cluster = new() { Name = "swarm", RunsOnThisHost = false, Capacity = new(48, 192L << 30, 4) };
    private readonly InMemoryWorkspaceStore _store = new();
    private readonly FakeGpuDetector _gpus = new();
    private int _clusterCreated;

    public void Dispose() => _dir.Dispose();

    private WorkspaceBackends Backends() => new(
        new Dictionary<string, Func<IWorkspaceBackend>>
        {
            ["docker"] = () => _local,
            ["swarm"] = () =>
            {
                _clusterCreated++;
                return _cluster;
            },
        },
        "docker",
        new Dictionary<string, string> { ["gpu-small"] = "swarm" },
        new Dictionary<SizeClass, string> { [SizeClass.Memory] = "swarm" });

    private WorkspaceManager Manager(WorkspaceBackends backends) =>
        new(backends, _store, SizeCatalog.Load(null), _gpus, new FakeProbe(), new DsvmPaths(Path.Combine(_dir.Path, "data"), Path.Combine(_dir.Path, "cache")),
            TimeProvider.System, new WorkspaceOptions { StartTimeout = TimeSpan.FromSeconds(5), PollInterval = TimeSpan.FromMilliseconds(5) });

    private static CreateWorkspaceRequest Request(string name, string size, string? backend = null) => new()
    {
        Name = name, Owner = "alice", OwnerId = "u-alice", Environment = "datascience", Image = "dsvm/datascience:latest", GpuMode = GpuMode.Optional, Size = size, Backend = backend,
    };

    [Fact]
    public void Asked_for_beats_size_route_beats_class_route_beats_default()
    {
        var b = Backends();
        var sizes = SizeCatalog.Load(null);
        Assert.Equal("docker", b.Select("docker", sizes.Get("gpu-small")));
        Assert.Equal("swarm", b.Select(null, sizes.Get("gpu-small")));
        Assert.Equal("swarm", b.Select(null, sizes.Get("memory-large")));
        Assert.Equal("docker", b.Select(null, sizes.Get("gpu-medium")));
        Assert.Equal("docker", b.Select(null, sizes.Get("small")));
        var ex = Assert.Throws<UsageException>(() => b.Select("kubernetes", sizes.Get("small")));
        Assert.Contains("unknown backend 'kubernetes' (configured: docker, swarm", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_route_to_an_unconfigured_backend_is_refused_at_construction()
    {
        var ex = Assert.Throws<UsageException>(() => new WorkspaceBackends(
            new Dictionary<string, Func<IWorkspaceBackend>> { ["docker"] = () => _local }, "docker", new Dictionary<string, string> { ["small"] = "swarm" }));
        Assert.Contains("'swarm' is routed to but not configured", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Workspaces_go_where_their_size_is_routed_and_stay_there_across_resize()
    {
        var manager = Manager(Backends());
        var local = await manager.UpAsync(Request("notebook", "small"), null, default);
        Assert.Equal("docker", local.Backend);
        Assert.Equal(0, _clusterCreated);

        var gpu = await manager.UpAsync(Request("train", "gpu-small"), null, default);
        Assert.Equal("swarm", gpu.Backend);
        Assert.Single(_cluster.Starts);
        Assert.True(gpu.GpuEnabled, "the cluster's own GPUs count, not this machine's (none here)");
        Assert.Single(_local.Starts);

        // gpu-medium routes to docker, but the workspace's home lives on the cluster: it stays there.
        var resized = await manager.ResizeAsync("alice", "train", "gpu-medium", GpuMode.Optional, null, default);
        Assert.Equal("swarm", resized.Backend);
        Assert.Equal(2, _cluster.Starts.Count);
        Assert.Single(_cluster.Stops);
        Assert.Single(_local.Starts);

        await manager.StopAsync("alice", "train", null, default);
        await manager.DeleteAsync("alice", "train", deleteHome: true, null, default);
        Assert.Equal(2, _cluster.Stops.Count);
        Assert.Single(_cluster.Deletes);
        Assert.Empty(_local.Deletes);
        Assert.Equal(1, _clusterCreated);
    }

    [Fact]
    public async Task A_local_gpu_does_not_make_a_cluster_without_gpus_fit_a_gpu_size()
    {
        _gpus.Count = 1;
        var cluster = new FakeBackend { Name = "swarm", RunsOnThisHost = false, Capacity = new(48, 192L << 30, 0) };
        var backends = new WorkspaceBackends(
            new Dictionary<string, Func<IWorkspaceBackend>> { ["docker"] = () => _local, ["swarm"] = () => cluster }, "docker",
            new Dictionary<string, string> { ["gpu-small"] = "swarm" });
        var w = await Manager(backends).UpAsync(Request("train", "gpu-small"), null, default);
        Assert.Equal("swarm", w.Backend);
        Assert.False(w.GpuEnabled);
        Assert.True(w.CpuFallback);

        var onHere = await Manager(backends).UpAsync(Request("here", "gpu-small", backend: "docker"), null, default);
        Assert.True(onHere.GpuEnabled);
    }

    [Fact]
    public async Task Asking_for_another_backend_for_an_existing_workspace_is_a_conflict()
    {
        var manager = Manager(Backends());
        await manager.UpAsync(Request("notebook", "small"), null, default);
        var ex = await Assert.ThrowsAsync<ConflictException>(() => manager.UpAsync(Request("notebook", "small", backend: "swarm"), null, default));
        Assert.Contains("already exists on backend 'docker'", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Reconcile_scans_the_backends_in_use_and_repairs_each_record_from_its_own_backend()
    {
        var manager = Manager(Backends());
        var w = await manager.UpAsync(Request("train", "gpu-small"), null, default);
        _cluster.StopOutside(w.Id);
        _cluster.Orphans.Add(new ManagedResource("ws-orphan", "dsvm-bob-x", true, new WorkspaceHandle("ws-orphan", "swarm", default)));

        var report = await manager.ReconcileAsync(default);
        Assert.Contains("alice/train: Running -> Stopped", report.Repaired);
        Assert.Contains(report.Unknown, u => u.WorkspaceId == "ws-orphan");
    }

    [Fact]
    public async Task Unused_backends_are_never_created()
    {
        var manager = Manager(Backends());
        await manager.UpAsync(Request("a", "small"), null, default);
        await manager.ReconcileAsync(default);
        await manager.ListAsync(null, default);
        Assert.Equal(0, _clusterCreated);
    }
}
