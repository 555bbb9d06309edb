using Docker.DotNet.Models;
using Dsvm.Core;
using Dsvm.Core.Sizes;
using Dsvm.Core.Workspaces;

namespace Dsvm.Swarm.Tests;

public sealed class ServiceParametersTests : IDisposable
{
    private const string Token = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    // Never contacted: CreateParameters only builds the definition.
    private readonly SwarmWorkspaceBackend _backend = new(new SwarmBackendOptions
    {
        ManagerEndpoint = new Uri("unix:///nonexistent.sock"),
        Registry = "10.0.5.1:5000",
        Constraints = ["node.labels.dsvm==true"],
    });

    public void Dispose() => _backend.Dispose();

    private static WorkspaceStartRequest Request(MachineSize? size = null, bool gpu = false) => new()
    {
        Id = "ws-0123456789ab",
        Name = "proj",
        Owner = "alice",
        Image = "dsvm/datascience:abc123",
        Size = size ?? new MachineSize("medium", 2, 4, 0, SizeClass.General),
        Token = Token,
        HomeVolume = "dsvm-home-h-00000000beef",
        HomeId = "h-00000000beef",
        OwnerId = "u-a11ce0000000",
        BaseUrl = "/user/alice/proj/",
        Gpu = gpu,
        Labels = new Dictionary<string, string> { ["io.opendsvm.owner"] = "alice", ["io.opendsvm.size"] = "medium" },
    };

    private ServiceSpec Spec(WorkspaceStartRequest r, string? pin = null) =>
        _backend.CreateParameters(r, "dsvm-alice-proj", _backend.NodeImage(r.Image), pin, "net0123id").Service;

    [Fact]
    public void A_service_carries_the_login_of_the_registry_its_image_names_and_no_other()
    {
        using var backend = new SwarmWorkspaceBackend(new SwarmBackendOptions
        {
            ManagerEndpoint = new Uri("unix:///nonexistent.sock"),
            Registry = "10.0.5.1:5000",
            Logins = host => host == "10.0.5.1:5000" ? new RegistryLogin("hub", "s3cret") : null,
        });

        // A local image goes through the configured registry: the nodes pull it there with its login.
        var local = Request();
        var auth = backend.CreateParameters(local, "dsvm-alice-proj", backend.NodeImage(local.Image), null, "net0123id").RegistryAuth;
        Assert.Equal(("10.0.5.1:5000", "hub", "s3cret"), (auth.ServerAddress, auth.Username, auth.Password));

        // A catalog's digest reference at another registry without a login: anonymous, the login never leaves for it.
        var other = Request() with { Image = "registry.example.org/dsvm/minimal@sha256:" + new string('a', 64) };
        Assert.Null(backend.CreateParameters(other, "dsvm-alice-proj", backend.NodeImage(other.Image), null, "net0123id").RegistryAuth);
        Assert.Null(backend.AuthFor("dsvm/minimal:abc"));

        // The home take-over service pulls the same image and carries the same login.
        var takeOver = backend.TakeOverParameters(local, "dsvm-alice-proj-home", backend.NodeImage(local.Image), "node7", "net0123id").RegistryAuth;
        Assert.Equal(("10.0.5.1:5000", "hub", "s3cret"), (takeOver.ServerAddress, takeOver.Username, takeOver.Password));

        // Without logins configured: anonymous, as before.
        Assert.Null(_backend.CreateParameters(local, "dsvm-alice-proj", _backend.NodeImage(local.Image), null, "net0123id").RegistryAuth);
    }

    [Fact]
    public void Limits_and_reservations_are_the_size()
    {
        var spec = Spec(Request(new MachineSize("half", 0.5, 1.5, 0, SizeClass.General)));
        var res = spec.TaskTemplate.Resources;
        Assert.Equal(500_000_000, res.Limits.NanoCPUs);
        Assert.Equal(500_000_000, res.Reservations.NanoCPUs);
        Assert.Equal(1536L * 1024 * 1024, res.Limits.MemoryBytes);
        Assert.Equal(1536L * 1024 * 1024, res.Reservations.MemoryBytes);
        Assert.Equal(1024, res.Limits.Pids);
        Assert.True(res.Reservations.GenericResources is null or { Count: 0 });
        Assert.Equal(1UL, spec.Mode.Replicated.Replicas);
        Assert.Equal("on-failure", spec.TaskTemplate.RestartPolicy.Condition);
        Assert.Equal(3UL, spec.TaskTemplate.RestartPolicy.MaxAttempts);
    }

    [Fact]
    public void Port_is_published_in_host_mode_without_the_ingress_mesh()
    {
        var spec = Spec(Request());
        var port = Assert.Single(spec.EndpointSpec.Ports);
        Assert.Equal("host", port.PublishMode);
        Assert.Equal(8888U, port.TargetPort);
        Assert.Equal(0U, port.PublishedPort); // the node picks a free port; the task's status reports it
        Assert.Equal("dnsrr", spec.EndpointSpec.Mode);
    }

    [Fact]
    public void The_service_is_on_its_own_overlay_only()
    {
        var spec = Spec(Request());
        var net = Assert.Single(spec.TaskTemplate.Networks);
        Assert.Equal("net0123id", net.Target);
    }

    [Fact]
    public void The_home_take_over_runs_once_on_the_homes_node_as_root_with_two_capabilities()
    {
        var p = _backend.TakeOverParameters(Request(), "dsvm-ws-0123456789ab-home", "10.0.5.1:5000/dsvm/datascience:abc123", "node7", "net0123id").Service;
        Assert.Equal("none", p.TaskTemplate.RestartPolicy.Condition);
        Assert.Equal(1UL, p.Mode.Replicated.Replicas);
        Assert.Equal(["node.id==node7"], p.TaskTemplate.Placement.Constraints);
        Assert.Equal("net0123id", Assert.Single(p.TaskTemplate.Networks).Target);
        var c = p.TaskTemplate.ContainerSpec;
        Assert.Equal("0:0", c.User);
        Assert.Equal(["ALL"], c.CapabilityDrop);
        Assert.Equal(["CAP_CHOWN", "CAP_DAC_READ_SEARCH"], c.CapabilityAdd);
        Assert.Equal(WorkspaceUser.TakeOverScript("/home/dsvm"), c.Command[^1]);
        var home = Assert.Single(c.Mounts);
        Assert.Equal(("volume", "dsvm-home-h-00000000beef", "/home/dsvm"), (home.Type, home.Source, home.Target));
        Assert.Equal(64, p.TaskTemplate.Resources.Limits.Pids);
        Assert.Equal("home-takeover", p.Labels["io.opendsvm.role"]);
        Assert.Equal("ws-0123456789ab", p.Labels["io.opendsvm.workspace"]);
        Assert.Equal("h-00000000beef", p.Labels["io.opendsvm.home"]);
        Assert.True(p.EndpointSpec is null || p.EndpointSpec.Ports is null or { Count: 0 }); // nothing published
    }

    private static readonly MachineSize Offline = new("offline", 1, 1, 0, SizeClass.General, "", WorkspaceNetwork.Isolated);

    [Fact]
    public void An_isolated_server_is_on_its_internal_overlay_only_and_publishes_nothing()
    {
        var spec = Spec(Request(Offline));
        Assert.Equal(["net0123id"], spec.TaskTemplate.Networks.Select(n => n.Target));
        Assert.Empty(spec.EndpointSpec.Ports);
        Assert.Equal("dnsrr", spec.EndpointSpec.Mode); // its forwarder finds the task's IP by the service's name
        Assert.Equal("dsvm-ws-0123456789ab-fwd", spec.Labels["io.opendsvm.forwarder"]);
        Assert.False(Spec(Request()).Labels.ContainsKey("io.opendsvm.forwarder"));

        var overlay = SwarmWorkspaceBackend.NetworkParameters(Request(Offline));
        Assert.Equal(("dsvm-net-ws-0123456789ab", true, false), (overlay.Name, overlay.Internal, overlay.Attachable));
        var way = SwarmWorkspaceBackend.NetworkParameters(Request(Offline), forwarder: true);
        Assert.Equal(("dsvm-net-ws-0123456789ab-fwd", false, false), (way.Name, way.Internal, way.Attachable));
        Assert.Equal("ws-0123456789ab", way.Labels["io.opendsvm.workspace"]);
    }

    [Fact]
    public void An_isolated_workspaces_forwarder_relays_to_the_server_by_name_unprivileged_on_the_servers_node()
    {
        var p = _backend.ForwarderParameters(Request(Offline), "10.0.5.1:5000/dsvm/datascience:abc123", "node7", "net-internal", "net-way").Service;
        Assert.Equal("dsvm-ws-0123456789ab-fwd", p.Name);
        Assert.Equal("forwarder", p.Labels["io.opendsvm.role"]); // not listed as a workspace's server
        Assert.Equal("ws-0123456789ab", p.Labels["io.opendsvm.workspace"]); // stop and delete find it by label
        var c = p.TaskTemplate.ContainerSpec;
        Assert.Equal("10.0.5.1:5000/dsvm/datascience:abc123", c.Image);
        Assert.Equal(["python3", "-c", SwarmWorkspaceBackend.RelayScript, "dsvm-ws-0123456789ab", "8888"], c.Command);
        Assert.Equal(WorkspaceUser.DockerUser, c.User);
        Assert.Equal(["ALL"], c.CapabilityDrop);
        Assert.True(c.ReadOnly);
        Assert.DoesNotContain(c.Env, e => e.StartsWith("JUPYTER_TOKEN", StringComparison.Ordinal)); // it never sees the token
        Assert.Null(p.TaskTemplate.Resources.Reservations); // takes no capacity from workspaces
        Assert.Equal(32, p.TaskTemplate.Resources.Limits.Pids);
        Assert.Equal(["node.id==node7"], p.TaskTemplate.Placement.Constraints);
        Assert.Equal(["net-internal", "net-way"], p.TaskTemplate.Networks.Select(n => n.Target));
        var port = Assert.Single(p.EndpointSpec.Ports);
        Assert.Equal((8888u, "host"), (port.TargetPort, port.PublishMode));
    }

    [Fact]
    public void The_overlay_is_named_by_workspace_id_labelled_and_not_attachable()
    {
        var p = SwarmWorkspaceBackend.NetworkParameters(Request());
        Assert.Equal("dsvm-net-ws-0123456789ab", p.Name);
        Assert.Equal("overlay", p.Driver);
        Assert.Equal("swarm", p.Scope);
        Assert.False(p.Attachable); // no plain container (another user's included) can join it
        Assert.False(p.Internal);
        Assert.Equal("true", p.Labels["io.opendsvm.managed"]);
        Assert.Equal("ws-0123456789ab", p.Labels["io.opendsvm.workspace"]);
        Assert.Equal("u-a11ce0000000", p.Labels["io.opendsvm.owner-id"]);
        Assert.Equal("alice", p.Labels["io.opendsvm.owner"]);
        Assert.Equal("proj", p.Labels["io.opendsvm.name"]);
        Assert.DoesNotContain("alice", p.Name, StringComparison.Ordinal);
    }

    [Fact]
    public void Labels_mark_service_container_and_home_volume()
    {
        var spec = Spec(Request());
        Assert.Equal("true", spec.Labels["io.opendsvm.managed"]);
        Assert.Equal("ws-0123456789ab", spec.Labels["io.opendsvm.workspace"]);
        Assert.Equal("h-00000000beef", spec.Labels["io.opendsvm.home"]);
        Assert.Equal("alice", spec.Labels["io.opendsvm.owner"]);
        var c = spec.TaskTemplate.ContainerSpec;
        Assert.Equal("true", c.Labels["io.opendsvm.managed"]);
        Assert.Equal("ws-0123456789ab", c.Labels["io.opendsvm.workspace"]);
        var home = Assert.Single(c.Mounts, m => m.Type == "volume");
        Assert.Equal("dsvm-home-h-00000000beef", home.Source);
        Assert.Equal("h-00000000beef", home.VolumeOptions.Labels["io.opendsvm.home"]);
        Assert.Equal("u-a11ce0000000", home.VolumeOptions.Labels["io.opendsvm.owner-id"]);
        Assert.Equal("/home/dsvm", home.Target);
        Assert.Equal("true", home.VolumeOptions.Labels["io.opendsvm.managed"]);
        Assert.Equal("ws-0123456789ab", home.VolumeOptions.Labels["io.opendsvm.workspace"]);
    }

    [Fact]
    public void Container_is_unprivileged_and_gets_the_token_in_its_environment_only()
    {
        var spec = Spec(Request());
        var c = spec.TaskTemplate.ContainerSpec;
        Assert.Equal("65530:65530", c.User);
        Assert.Equal(["ALL"], c.CapabilityDrop);
        Assert.Contains($"JUPYTER_TOKEN={Token}", c.Env);
        Assert.Contains("DSVM_BASE_URL=/user/alice/proj/", c.Env);
        Assert.Contains("CUDA_VISIBLE_DEVICES=", c.Env);
        Assert.Contains("HOME=/home/dsvm", c.Env);
        Assert.True(c.Args is null or { Count: 0 });
        Assert.True(c.Command is null or { Count: 0 });
        Assert.Equal("proj", c.Hostname);
        var shm = Assert.Single(c.Mounts, m => m.Type == "tmpfs");
        Assert.Equal("/dev/shm", shm.Target);
        Assert.Equal(1L << 30, shm.TmpfsOptions.SizeBytes);
    }

    [Fact]
    public void Image_comes_from_the_registry()
    {
        var spec = Spec(Request());
        Assert.Equal("10.0.5.1:5000/dsvm/datascience:abc123", spec.TaskTemplate.ContainerSpec.Image);
        Assert.Equal("registry.example:443/dsvm/x:1", _backend.NodeImage("registry.example:443/dsvm/x:1"));
        var pinned = "127.0.0.1:5000/dsvm/minimal@sha256:" + new string('a', 64);
        Assert.Equal(pinned, _backend.NodeImage(pinned));
        Assert.Equal(("127.0.0.1:5000/dsvm/minimal", "t1"), SwarmWorkspaceBackend.SplitTag("127.0.0.1:5000/dsvm/minimal:t1"));
        Assert.Equal(("127.0.0.1:5000/dsvm/minimal", "latest"), SwarmWorkspaceBackend.SplitTag("127.0.0.1:5000/dsvm/minimal"));
    }

    [Fact]
    public void Placement_is_the_operator_constraints_plus_the_home_node_once_known()
    {
        Assert.Equal(["node.labels.dsvm==true"], Spec(Request()).TaskTemplate.Placement.Constraints);
        Assert.Equal(["node.labels.dsvm==true", "node.id==abc123node"], Spec(Request(), pin: "abc123node").TaskTemplate.Placement.Constraints);
    }

    [Fact]
    public void Gpu_sizes_reserve_generic_resources()
    {
        var size = new MachineSize("gpu-large", 8, 64, 2, SizeClass.Gpu);
        var spec = Spec(Request(size, gpu: true));
        var g = Assert.Single(spec.TaskTemplate.Resources.Reservations.GenericResources);
        Assert.Equal("NVIDIA-GPU", g.DiscreteResourceSpec.Kind);
        Assert.Equal(2, g.DiscreteResourceSpec.Value);
        Assert.DoesNotContain("CUDA_VISIBLE_DEVICES=", spec.TaskTemplate.ContainerSpec.Env);

        // A GPU size started on CPU (optional-GPU fallback) reserves none.
        var fallback = Spec(Request(size, gpu: false));
        Assert.True(fallback.TaskTemplate.Resources.Reservations.GenericResources is null or { Count: 0 });
    }

    [Fact]
    public void Services_are_named_by_workspace_id_never_by_user_names()
    {
        // alice/x-data and alice-x/data once both became dsvm-alice-x-data (issue 9).
        Assert.Equal("dsvm-ws-0123456789ab", SwarmWorkspaceBackend.ServiceName("ws-0123456789ab"));
        Assert.NotEqual(SwarmWorkspaceBackend.ServiceName("ws-0123456789ab"), SwarmWorkspaceBackend.ServiceName("ws-0123456789ac"));
        Assert.Matches("^dsvm-home-[0-9a-f]{24}$", SwarmWorkspaceBackend.PinName("dsvm-home-" + new string('a', 81)));
    }

    [Theory]
    [InlineData("http://10.0.5.1:5000")]
    [InlineData("10.0.5.1:5000/dsvm")]
    [InlineData("")]
    public void Bad_registry_is_refused_clearly(string registry)
    {
        var ex = Assert.Throws<UsageException>(() => new SwarmWorkspaceBackend(new SwarmBackendOptions
        {
            ManagerEndpoint = new Uri("unix:///nonexistent.sock"), Registry = registry,
        }));
        Assert.Contains("host:port", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Env_carries_the_sizes_cpus_rounded_down()
    {
        Assert.Contains("DSVM_CPUS=2", Spec(Request(new MachineSize("odd", 2.5, 4, 0, SizeClass.General))).TaskTemplate.ContainerSpec.Env);
        Assert.Contains("DSVM_CPUS=1", Spec(Request(new MachineSize("half", 0.5, 1, 0, SizeClass.General))).TaskTemplate.ContainerSpec.Env);
    }

    [Theory]
    [InlineData("20.10.24+dfsg1", true)]
    [InlineData("20.10.5", true)]
    [InlineData("23.0.1", true)]
    [InlineData("23.0.2", false)]
    [InlineData("24.0.7", false)]
    [InlineData("27.3.1-1~debian.12", false)]
    [InlineData("dev", false)]
    [InlineData("", false)]
    public void Engines_before_23_0_2_are_known_to_reject_running_gpu_tasks(string version, bool rejects) =>
        Assert.Equal(rejects, SwarmWorkspaceBackend.RejectsGenericResourceTasks(version));
}
