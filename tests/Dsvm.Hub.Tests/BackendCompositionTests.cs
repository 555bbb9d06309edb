using Dsvm.Cli;
using Dsvm.Core;
using Dsvm.Core.Workspaces;
using Dsvm.Images;

namespace Dsvm.Hub.Tests;

/// <summary>The composition the CLI and the hub share (<see cref="BackendFactory.Registry"/>): every backend project's registration.</summary>
public sealed class BackendCompositionTests : IDisposable
{
    private const string File = "/etc/dsvm/backends.yaml";
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "dsvm-compose-" + Guid.NewGuid().ToString("N")[..12]);
    private readonly BackendRegistry _registry;

    public BackendCompositionTests()
    {
        var paths = new DsvmPaths(Path.Combine(_dir, "data"), Path.Combine(_dir, "cache"));
        _registry = BackendFactory.Registry(paths, new NoGpus(), () => new ImageServices(paths));
    }

    public void Dispose()
    {
        if (Directory.Exists(_dir))
        {
            Directory.Delete(_dir, recursive: true);
        }
    }

    [Fact]
    public void Images_are_built_and_found_on_the_engine_of_the_default_docker_backend()
    {
        // Issue 10 part 6: one engine resolver. A docker backend at another endpoint must find (and build) its images
        // there, not on this machine's engine, where the workspace does not start.
        var remote = BackendConfig.Parse("default: box\nbackends:\n  box:\n    type: docker\n    endpoint: tcp://10.0.5.7:2375\n", "backends.yaml", _registry);
        Assert.Equal(new Uri("tcp://10.0.5.7:2375"), BackendFactory.ImageEngine(remote).Endpoint);

        // A swarm (or qemu, or a cluster) takes its images from this machine's engine.
        var swarm = BackendConfig.Parse("default: s\nbackends:\n  s:\n    type: swarm\n    manager: tcp://10.0.5.7:2375\n", "backends.yaml", _registry);
        Assert.Equal(DockerEndpoint.Default(), BackendFactory.ImageEngine(swarm).Endpoint);
        Assert.Equal(DockerEndpoint.Default(), BackendFactory.ImageEngine(BackendConfig.Load(null, _registry)).Endpoint);
    }

    [Fact]
    public void Every_backend_project_registers_its_type_and_the_local_engine_is_the_built_in_default()
    {
        Assert.Equal(["docker", "qemu", "swarm", "kubernetes"], _registry.Types);
        var config = BackendConfig.Load(null, _registry);
        Assert.Equal("docker", config.Default);
        Assert.Equal(["docker", "qemu"], config.Backends.Select(b => b.Name));
        Assert.True(_registry.Find("docker")!.Capabilities is { Exec: true, Logs: true, Gpu: true });
        Assert.True(_registry.Find("kubernetes")!.Capabilities is { Exec: false, Logs: false, Gpu: true });
    }

    [Fact]
    public void An_unknown_type_is_a_located_error_never_another_backend()
    {
        // Before the registry, a section of an unknown type made by hand crashed with a KeyNotFoundException (a stack trace).
        var section = new BackendSection("cluster", "nomad", new Dictionary<string, BackendSetting>(), File, 3, 3);
        var ex = Assert.Throws<SpecValidationException>(() => _registry.Create(new BackendConfig { Default = "cluster", Backends = [section] }));
        Assert.Equal($"{File}:3:3: backends.cluster.type: 'nomad' is not a backend type (types: docker, qemu, swarm, kubernetes; name the section after one or give type:)",
            Assert.Single(ex.Errors).ToString());

        var parsed = Assert.Throws<SpecValidationException>(() => BackendConfig.Parse("backends:\n  gpu:\n    type: kubernets\n", File, _registry));
        Assert.Contains("'kubernets' is not a backend type (did you mean 'kubernetes'?)", parsed.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Settings_are_checked_by_each_registration_with_file_line_and_key()
    {
        var config = BackendConfig.Parse("""
            backends:
              docker:
                endpoint: nope
              vm:
                type: qemu
                accelerator: xen
              swarm:
                registry: 10.0.0.2:5000
              k8s:
                type: kubernetes
                endpoint-mode: magic
                node-selector: zone
            """, File, _registry);
        var ex = Assert.Throws<SpecValidationException>(() => _registry.Create(config));
        Assert.Equal(
            [
                $"{File}:3:15: backends.docker.endpoint: 'nope' is not an absolute URI (e.g. unix:///var/run/docker.sock or tcp://10.0.0.2:2376)",
                $"{File}:6:18: backends.vm.accelerator: 'xen' is not an accelerator (auto, kvm, tcg)",
                $"{File}:7:3: backends.swarm.manager: required: the engine API of a swarm manager (unix:///var/run/docker.sock on a manager, or tcp://manager:2376)",
                $"{File}:11:20: backends.k8s.endpoint-mode: 'magic' is not an endpoint mode (service, pod-ip, template)",
            ],
            ex.Errors.Select(e => e.ToString()));
    }

    [Theory]
    [InlineData("backends:\n  k8s: { type: kubernetes }\n", false)]
    [InlineData("backends:\n  swarm: { manager: \"tcp://10.0.0.2:2376\" }\n", false)]
    [InlineData("backends:\n  swarm: { manager: \"tcp://10.0.0.2:2376\", registry: \"10.0.0.2:5000\" }\n", true)]
    [InlineData("backends:\n  k8s: { type: kubernetes }\n  docker: {}\n", true)]
    [InlineData("backends:\n  docker: { endpoint: \"tcp://10.0.0.3:2376\" }\n", true)]
    [InlineData("backends:\n  vm: { type: qemu }\n", true)]
    public void The_local_engine_is_needed_only_by_backends_that_run_on_it(string yaml, bool needed)
    {
        var config = BackendConfig.Parse(yaml, File, _registry);
        Assert.Equal(needed, _registry.UsesLocalEngine(config));
    }

    [Fact]
    public void The_hub_pulls_from_its_own_registry_with_Hub_Registry_login_and_from_others_with_the_machines()
    {
        var paths = new DsvmPaths(Path.Combine(_dir, "data"), Path.Combine(_dir, "cache")).EnsureCreated();
        var file = Path.Combine(paths.Data, Dsvm.Images.Registry.RegistryCredentialStore.FileName);
        System.IO.File.WriteAllText(file, """{"10.0.5.1:5000": {"username": "node", "password": "n0de"}}""");
        if (!OperatingSystem.IsWindows())
        {
            System.IO.File.SetUnixFileMode(file, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        }

        var logins = BackendFactory.HubLogins(paths, "https://Registry.Example.org:443", "hub", "hüb pw");
        Assert.Equal(new RegistryLogin("hub", "hüb pw"), logins("registry.example.org:443"));
        Assert.Equal(new RegistryLogin("node", "n0de"), logins("10.0.5.1:5000"));
        Assert.Null(logins("other.example.org"));
        Assert.DoesNotContain("pw", logins("registry.example.org:443")!.ToString(), StringComparison.Ordinal);

        // No Hub:Registry login, or a bad Url (reported with its key elsewhere): the machine's configuration only.
        Assert.Null(BackendFactory.HubLogins(paths, "https://registry.example.org:443", null, null)("registry.example.org:443"));
        Assert.Null(BackendFactory.HubLogins(paths, "not a registry", "hub", "pw")("registry.example.org:443"));

        // With Hub:Registry:PullAddress the catalog's images name that address: the same login goes there.
        var pulled = BackendFactory.HubLogins(paths, "http://172.17.0.1:5000", "hub", "pw", "127.0.0.1:5000");
        Assert.Equal(new RegistryLogin("hub", "pw"), pulled("127.0.0.1:5000"));
        Assert.Equal(new RegistryLogin("hub", "pw"), pulled("172.17.0.1:5000"));
    }

    [Fact]
    public void The_swarm_backend_gets_the_same_logins_as_the_docker_backend()
    {
        var paths = new DsvmPaths(Path.Combine(_dir, "data"), Path.Combine(_dir, "cache")).EnsureCreated();
        var registry = BackendFactory.Registry(paths, new NoGpus(), () => new ImageServices(paths),
            BackendFactory.HubLogins(paths, "http://10.0.5.1:5000", "hub", "pw"));
        var config = BackendConfig.Parse("default: s\nbackends:\n  s:\n    type: swarm\n    manager: tcp://10.0.5.7:2375\n    registry: 10.0.5.1:5000\n", "backends.yaml", registry);
        using var swarm = Assert.IsType<Dsvm.Swarm.SwarmWorkspaceBackend>(registry.Create(config).Get("s"));
        Assert.Equal(new RegistryLogin("hub", "pw"), swarm.Options.Logins!("10.0.5.1:5000"));
    }

    [Theory]
    [InlineData("10.0.5.1:5000/dsvm/minimal@sha256:0123", "10.0.5.1:5000")]
    [InlineData("registry.example.org/dsvm/x:1", "registry.example.org")]
    [InlineData("localhost/dsvm/x", "localhost")]
    [InlineData("dsvm/minimal:abc", null)]
    [InlineData("minimal", null)]
    public void An_image_names_its_registry_only_with_a_dot_a_port_or_localhost(string image, string? registry) =>
        Assert.Equal(registry, ImageReferences.RegistryOf(image));
}
