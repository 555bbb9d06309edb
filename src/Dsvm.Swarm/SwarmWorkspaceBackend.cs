using System.Collections.Concurrent;
using System.Globalization;
using System.Net;
using System.Runtime.CompilerServices;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Docker.DotNet;
using Docker.DotNet.Models;
using Dsvm.Core;
using Dsvm.Core.Sizes;
using Dsvm.Core.Workspaces;

namespace Dsvm.Swarm;

/// <summary>
/// Workspaces as Docker Swarm services (one replica each). Swarm's scheduler places them by their reservations
/// (CPU, memory, <c>NVIDIA-GPU</c> generic resources); the home is a local volume on the node of the first start,
/// and every later start is pinned there (<c>node.id==X</c>), the pin kept in the swarm as a labelled config so
/// any hub pointing at the manager finds it. Jupyter is published in host mode on its node (no ingress mesh).
/// </summary>
public sealed class SwarmWorkspaceBackend : IWorkspaceBackend, IDescribableBackend, IOrphanSweeper, IDisposable
{
    public const string ManagedLabel = "io.opendsvm.managed";
    public const string WorkspaceLabel = "io.opendsvm.workspace";
    public const string HomeLabel = "io.opendsvm.home";
    public const string NodeLabel = "io.opendsvm.node";

    /// <summary>Marks a service that is not a workspace's server: the one-shot home take-over (<c>home-takeover</c>), an isolated workspace's <c>forwarder</c>.</summary>
    public const string RoleLabel = "io.opendsvm.role";

    /// <summary>On an isolated workspace's server: the name of its forwarder service, whose port is the way in.</summary>
    public const string ForwarderLabel = "io.opendsvm.forwarder";

    private static readonly TimeSpan NetworkRemoveTimeout = TimeSpan.FromSeconds(30);

    private readonly DockerClient _manager;
    private readonly DockerClient _local;
    private readonly SwarmBackendOptions _options;
    private readonly TimeProvider _time;
    private readonly ConcurrentDictionary<string, Lazy<Task>> _pushes = new(StringComparer.Ordinal);

    public SwarmWorkspaceBackend(SwarmBackendOptions options)
        : this(options, TimeProvider.System) { }

    public SwarmWorkspaceBackend(SwarmBackendOptions options, TimeProvider time)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (options.Registry is { } r && !IsRegistryAddress(r))
        {
            throw new UsageException($"'{r}' is not a registry address: use host:port, e.g. 10.0.5.1:5000");
        }

        if (options.PushRegistry is { } p && !IsRegistryAddress(p))
        {
            throw new UsageException($"'{p}' is not a registry address: use host:port, e.g. 127.0.0.1:5000");
        }

        _options = options;
        _time = time;
        _manager = new DockerClientConfiguration(options.ManagerEndpoint, defaultTimeout: options.RequestTimeout).CreateClient();
        _local = new DockerClientConfiguration(options.LocalEngine, defaultTimeout: options.RequestTimeout).CreateClient();
    }

    public string Name => "swarm";

    /// <summary>Workspaces run on the swarm's nodes: this machine's GPUs do not count.</summary>
    public bool RunsOnThisHost => false;

    public SwarmBackendOptions Options => _options;

    /// <summary>Named by the workspace's ID only (a DNS label: <c>dsvm-ws-</c> and 12 hex digits), never by user-chosen names.</summary>
    internal static string ServiceName(string workspaceId) => WorkspaceIds.ObjectName(workspaceId);

    internal static string PinName(string homeVolume) => "dsvm-home-" + Hash(homeVolume)[..24];

    private static string Hash(string s) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(s)));

    private static bool IsRegistryAddress(string s) =>
        s.Length > 0 && !s.Contains('/', StringComparison.Ordinal) && !s.Contains("://", StringComparison.Ordinal) && Uri.CheckHostName(s.Split(':')[0]) != UriHostNameType.Unknown;

    /// <summary>The image reference the nodes pull: <c>REGISTRY/dsvm/ENV:TAG</c> with a registry, else the local name.</summary>
    public string NodeImage(string image) => _options.Registry is { } r && !HasRegistry(image) ? $"{r}/{image}" : image;

    private static bool HasRegistry(string image) => ImageReferences.HasRegistry(image);

    /// <summary>The login for the registry <paramref name="image"/> names, as the engine takes it; null: anonymous.</summary>
    internal AuthConfig? AuthFor(string image) =>
        ImageReferences.RegistryOf(image) is { } registry && _options.Logins?.Invoke(registry) is { } login
            ? new AuthConfig { ServerAddress = registry, Username = login.Username, Password = login.Password }
            : null;

    public Task<WorkspaceLaunch> StartAsync(WorkspaceStartRequest request, IProgress<WorkspaceProgress>? progress, CancellationToken ct) =>
        AnsweredAsync(() => StartServiceAsync(request, progress, ct), ct);

    private async Task<WorkspaceLaunch> StartServiceAsync(WorkspaceStartRequest request, IProgress<WorkspaceProgress>? progress, CancellationToken ct)
    {
        if (request.Gpu && request.Size.Gpus > 0)
        {
            await EnsureGpuTasksSurviveAsync(request, ct);
        }

        var nodes = await NodesAsync(ct);
        var pin = await FindPinAsync(request.HomeVolume, ct);
        if (pin is not null && !nodes.Any(n => n.ID == pin))
        {
            throw new WorkspaceStartException(WorkspaceFailure.Capacity,
                $"the home volume {request.HomeVolume} is on node {pin}, which is no longer in the swarm; restore the node, or delete the workspace's home");
        }

        // An image that names its registry (a registry catalog's digest reference) is pulled by the nodes as it is.
        if (_options.Registry is not null && !HasRegistry(request.Image))
        {
            progress?.Report(new WorkspaceProgress($"pushing {request.Image} to {_options.Registry}"));
            await PushAsync(request.Image, ct);
        }

        var name = ServiceName(request.Id);
        // A service left by a crash or a killed command: the home is separate, so it is safe to replace.
        await RemoveServiceAsync(name, ct);
        await RemoveServiceAsync(ForwarderName(request.Id), ct);
        var (network, forwarderNetwork) = await EnsureNetworksAsync(request, ct);
        if (pin is not null)
        {
            // An existing home (on its node): files of the uid before 65530 become the workspace user's.
            progress?.Report(new WorkspaceProgress($"checking the home's owner on node {Describe(nodes, pin)}"));
            await TakeOverHomeAsync(request, NodeImage(request.Image), pin, network, ct);
        }

        var parameters = CreateParameters(request, name, NodeImage(request.Image), pin, network);
        ServiceCreateResponse created;
        try
        {
            created = await _manager.Swarm.CreateServiceAsync(parameters, ct);
        }
        catch (DockerApiException ex)
        {
            throw new WorkspaceStartException(WorkspaceFailure.Backend, $"the swarm refused the service: {Message(ex)}");
        }

        progress?.Report(new WorkspaceProgress(pin is null ? "waiting for the swarm to place the workspace" : $"waiting for node {Describe(nodes, pin)} (holds the home)"));
        try
        {
            var (task, endpoint) = await WaitForTaskAsync(request, created.ID, pin, server: true, ct);
            if (forwarderNetwork is not null)
            {
                progress?.Report(new WorkspaceProgress("starting the isolated workspace's forwarder"));
                endpoint = await StartForwarderAsync(request, NodeImage(request.Image), task.NodeID, network, forwarderNetwork, ct);
            }

            var handle = new WorkspaceHandle(request.Id, Name,
                JsonSerializer.SerializeToElement(new { container = created.ID, service = name, node = task.NodeID }));
            return new WorkspaceLaunch(handle, endpoint!);
        }
        catch (WorkspaceStartException)
        {
            await RemoveServiceAsync(ForwarderName(request.Id), CancellationToken.None);
            await RemoveServiceAsync(created.ID, CancellationToken.None);
            throw;
        }
    }

    /// <summary>
    /// The isolated workspace's way in: a service on the workspace's internal overlay and on a second, ordinary one
    /// (which gives it <c>docker_gwbridge</c> and so a host-mode port on its node), relaying TCP from that port to
    /// Jupyter. The workspace itself is on the internal overlay only: no way out, no published port. Placed on the
    /// server's node, so the relay's traffic stays on that node.
    /// </summary>
    private async Task<Uri> StartForwarderAsync(
        WorkspaceStartRequest request, string image, string node, string network, string forwarderNetwork, CancellationToken ct)
    {
        ServiceCreateResponse created;
        try
        {
            created = await _manager.Swarm.CreateServiceAsync(ForwarderParameters(request, image, node, network, forwarderNetwork), ct);
        }
        catch (DockerApiException ex)
        {
            throw new WorkspaceStartException(WorkspaceFailure.Backend, $"the swarm refused the isolated workspace's forwarder: {Message(ex)}");
        }

        return (await WaitForTaskAsync(request, created.ID, node, server: false, ct)).Endpoint!;
    }

    /// <summary>
    /// Refuses a GPU start where the swarm's manager would kill it: Docker Engine before 23.0.2 (swarmkit before
    /// moby/swarmkit#3082) rejects a running task that holds a generic resource whenever its node changes, and every
    /// workspace's own overlay changes its node (moby/moby#44378: "task rejected by constraint enforcer: assigned node
    /// no longer meets constraints"). Said before anything is created, rather than a GPU workspace that dies later.
    /// </summary>
    private async Task EnsureGpuTasksSurviveAsync(WorkspaceStartRequest request, CancellationToken ct)
    {
        string? version;
        try
        {
            version = (await _manager.System.GetVersionAsync(ct)).Version;
        }
        catch (Exception ex) when (ex is DockerApiException or HttpRequestException or IOException or TimeoutException)
        {
            throw new WorkspaceStartException(WorkspaceFailure.Backend, $"the swarm manager at {_options.ManagerEndpoint} does not answer: {ex.Message}");
        }

        if (RejectsGenericResourceTasks(version))
        {
            throw new WorkspaceStartException(WorkspaceFailure.Gpu,
                $"size {request.Size.Name} needs {request.Size.Gpus} GPU(s), and the swarm's manager runs Docker Engine {version}: before 23.0.2, Swarm stops a task "
                + "holding a GPU whenever its node changes, which every workspace's network does (moby/moby#44378). "
                + "Upgrade the managers' engines to 23.0.2 or later, or use a size without GPUs.");
        }
    }

    /// <summary>True for engine versions before 23.0.2 (<c>20.10.24+dfsg1</c>, <c>23.0.1</c>); an unreadable version (a development build) is given the benefit of the doubt.</summary>
    internal static bool RejectsGenericResourceTasks(string? engineVersion)
    {
        var digits = new string((engineVersion ?? "").TakeWhile(c => char.IsAsciiDigit(c) || c == '.').ToArray()).TrimEnd('.');
        return System.Version.TryParse(digits.Contains('.', StringComparison.Ordinal) ? digits : digits + ".0", out var v) && v < new System.Version(23, 0, 2);
    }

    /// <summary>
    /// Waits until the service's task runs and, when it publishes Jupyter's port, has its host port. For the
    /// <paramref name="server"/> (not its forwarder) it records the home's node as soon as it is known.
    /// </summary>
    private async Task<(TaskResponse Task, Uri? Endpoint)> WaitForTaskAsync(WorkspaceStartRequest request, string serviceId, string? pin, bool server, CancellationToken ct)
    {
        var what = server ? "server" : "forwarder";
        var published = !server || request.Size.Network != WorkspaceNetwork.Isolated;
        DateTimeOffset? unschedulableSince = null;
        while (true)
        {
            ct.ThrowIfCancellationRequested();
            var task = await CurrentTaskAsync(serviceId, ct);
            if (task is not null)
            {
                if (pin is null && !string.IsNullOrEmpty(task.NodeID) && server)
                {
                    pin = task.NodeID;
                    await SavePinAsync(request, pin, ct);
                    await PinServiceAsync(serviceId, pin, ct);
                }

                var state = task.Status?.State ?? TaskState.New;
                if (state == TaskState.Running)
                {
                    if (!published)
                    {
                        return (task, null);
                    }

                    var nodes = await NodesAsync(ct);
                    if (EndpointOf(task, nodes) is { } endpoint)
                    {
                        return (task, endpoint);
                    }
                }
                else if (state is TaskState.Failed or TaskState.Rejected or TaskState.Complete or TaskState.Shutdown or TaskState.Orphaned)
                {
                    var nodes = await NodesAsync(ct);
                    var failure = (task.Status?.Err ?? "").Contains("No such image", StringComparison.OrdinalIgnoreCase) ? WorkspaceFailure.Image : WorkspaceFailure.Backend;
                    throw new WorkspaceStartException(failure,
                        $"the {what}'s task {state.ToString().ToLowerInvariant()} on node {Describe(nodes, task.NodeID)}: {TaskDetail(task)}");
                }
                else if (state == TaskState.Pending && !string.IsNullOrEmpty(task.Status?.Err))
                {
                    unschedulableSince ??= _time.GetUtcNow();
                    if (_time.GetUtcNow() - unschedulableSince > _options.UnschedulableTimeout)
                    {
                        var nodes = await NodesAsync(ct);
                        throw new WorkspaceStartException(WorkspaceFailure.Capacity,
                            $"the swarm cannot place the workspace{(server ? "" : "'s " + what)}: {task.Status!.Err}{PinNote(pin, nodes)}");
                    }
                }
            }

            await Task.Delay(TimeSpan.FromMilliseconds(250), _time, ct);
        }
    }

    /// <summary>
    /// Adds <c>node.id==NODE</c> to a service placed for the first time, so that a drain or a node failure can never move
    /// it away from its home. Swarm applies a placement-only change in place when the task's node satisfies it: the
    /// running task is not restarted.
    /// </summary>
    private async Task PinServiceAsync(string serviceId, string node, CancellationToken ct)
    {
        for (var attempt = 0; ; attempt++)
        {
            var service = await _manager.Swarm.InspectServiceAsync(serviceId, ct);
            var spec = service.Spec;
            spec.TaskTemplate.Placement ??= new Placement();
            spec.TaskTemplate.Placement.Constraints = [.. spec.TaskTemplate.Placement.Constraints ?? [], $"node.id=={node}"];
            try
            {
                await _manager.Swarm.UpdateServiceAsync(serviceId, new ServiceUpdateParameters { Service = spec, Version = (long)service.Version.Index }, ct);
                return;
            }
            catch (DockerApiException ex) when (attempt < 3 && ex.Message.Contains("out of sequence", StringComparison.OrdinalIgnoreCase))
            {
                // Swarm bumped the version meanwhile (task state changes do not, but be safe): read and try again.
            }
        }
    }

    /// <summary>The service definition: reservations = limits = the size, its own overlay, host-mode port, unprivileged and locked down.</summary>
    internal ServiceCreateParameters CreateParameters(WorkspaceStartRequest request, string name, string image, string? pinnedNode, string network)
    {
        var env = new List<string>
        {
            $"JUPYTER_TOKEN={request.Token}",
            $"DSVM_BASE_URL={request.BaseUrl}",
            $"DSVM_PORT={SwarmBackendOptions.JupyterPort}",
            $"DSVM_WORKSPACE={request.Name}",
            $"DSVM_SIZE={request.Size.Name}",
            // Set, not looked up: an image from before uid 65530 has no passwd entry for it (the engine would say "/").
            $"HOME={SwarmBackendOptions.HomePath}",
        };
        env.AddRange(request.Variables.Select(v => $"{v.Key}={v.Value}"));
        var reservations = new SwarmResources { NanoCPUs = request.Size.NanoCpus, MemoryBytes = request.Size.MemoryBytes };
        if (request.Gpu && request.Size.Gpus > 0)
        {
            // Swarm places the task only on a node advertising enough of this kind; with named resources (GPU UUIDs) it
            // also sets DOCKER_RESOURCE_<KIND>, which the NVIDIA runtime's swarm-resource setting turns into devices.
            reservations.GenericResources =
            [
                new GenericResource { DiscreteResourceSpec = new DiscreteGenericResource { Kind = _options.GpuResource, Value = request.Size.Gpus } },
            ];
            env.Add("NVIDIA_DRIVER_CAPABILITIES=compute,utility");
        }
        else
        {
            env.Add("CUDA_VISIBLE_DEVICES=");
        }

        var labels = new Dictionary<string, string>(request.Labels)
        {
            [ManagedLabel] = "true",
            [WorkspaceLabel] = request.Id,
        };
        if (request.HomeId.Length > 0)
        {
            labels[HomeLabel] = request.HomeId;
        }

        if (request.Size.Network == WorkspaceNetwork.Isolated)
        {
            labels[ForwarderLabel] = ForwarderName(request.Id);
        }

        var constraints = new List<string>(_options.Constraints);
        if (pinnedNode is not null)
        {
            constraints.Add($"node.id=={pinnedNode}");
        }

        var memory = request.Size.MemoryBytes;
        return new ServiceCreateParameters
        {
            RegistryAuth = AuthFor(image),
            Service = new ServiceSpec
            {
                Name = name,
                Labels = labels,
                Mode = new ServiceMode { Replicated = new ReplicatedService { Replicas = 1 } },
                TaskTemplate = new TaskSpec
                {
                    ContainerSpec = new ContainerSpec
                    {
                        Image = image,
                        User = SwarmBackendOptions.User,
                        Env = env,
                        Hostname = request.Name,
                        Labels = new Dictionary<string, string> { [ManagedLabel] = "true", [WorkspaceLabel] = request.Id },
                        CapabilityDrop = ["ALL"],
                        StopGracePeriod = (long)TimeSpan.FromSeconds(10).TotalNanoseconds,
                        Mounts =
                        [
                            new Mount
                            {
                                Type = "volume", Source = request.HomeVolume, Target = SwarmBackendOptions.HomePath,
                                VolumeOptions = new VolumeOptions
                                {
                                    Labels = WorkspaceLabels.ForHome(request),
                                },
                            },
                            // Services have no --shm-size: a tmpfs of a quarter of the memory (PyTorch data loaders need it).
                            new Mount
                            {
                                Type = "tmpfs", Target = "/dev/shm",
                                TmpfsOptions = new TmpfsOptions { SizeBytes = Math.Min(memory / 4, 2L << 30), Mode = 0b1_111_111_111 },
                            },
                        ],
                    },
                    Resources = new ResourceRequirements
                    {
                        Limits = new SwarmLimit { NanoCPUs = request.Size.NanoCpus, MemoryBytes = memory, Pids = _options.PidsLimit },
                        Reservations = reservations,
                    },
                    RestartPolicy = RestartOnFailure(),
                    Placement = new Placement { Constraints = constraints },
                    // Its own overlay only (never docker0): no peer shares it. The task's way out and its host-mode
                    // port go through the node's docker_gwbridge, which the engine creates with inter-container
                    // traffic off, so same-node peers do not reach each other there either.
                    Networks = [new NetworkAttachmentConfig { Target = network }],
                },
                EndpointSpec = new EndpointSpec
                {
                    // No VIP and no ingress mesh: the port is published on the task's own node only. An isolated
                    // workspace publishes nothing (its internal overlay gives it no docker_gwbridge to publish on):
                    // its forwarder does, and reaches it by this service's name on the overlay (dnsrr: the task's IP).
                    Mode = "dnsrr",
                    Ports = request.Size.Network == WorkspaceNetwork.Isolated
                        ? []
                        : [new PortConfig { Protocol = "tcp", TargetPort = SwarmBackendOptions.JupyterPort, PublishMode = "host" }],
                },
            },
        };
    }

    /// <summary>A server and its forwarder come back after a crash, up to <see cref="SwarmBackendOptions.MaxRestarts"/> times.</summary>
    private SwarmRestartPolicy RestartOnFailure() => new()
    {
        Condition = "on-failure",
        MaxAttempts = (ulong)_options.MaxRestarts,
        Delay = (long)TimeSpan.FromSeconds(2).TotalNanoseconds,
    };

    /// <summary>The forwarder of an isolated workspace: named by the workspace's ID.</summary>
    internal static string ForwarderName(string workspaceId) => ServiceName(workspaceId) + "-fwd";

    /// <summary>
    /// A TCP relay in Python's standard library (every OpenDSVM image has python3 for Jupyter): listens on Jupyter's
    /// port, connects to the server by its service name on the internal overlay, copies both ways (half-closes
    /// passed on). A connection the server refuses (still booting) is closed, so readiness probes see it as before.
    /// </summary>
    internal const string RelayScript = """
        import asyncio, sys
        host, port = sys.argv[1], int(sys.argv[2])
        async def pipe(r, w):
            try:
                while True:
                    data = await r.read(65536)
                    if not data:
                        break
                    w.write(data)
                    await w.drain()
                if w.can_write_eof():
                    w.write_eof()
            except (ConnectionError, OSError):
                pass
        async def handle(cr, cw):
            try:
                ur, uw = await asyncio.wait_for(asyncio.open_connection(host, port), 10)
            except (OSError, asyncio.TimeoutError):
                cw.close()
                return
            try:
                await asyncio.gather(pipe(cr, uw), pipe(ur, cw))
            finally:
                uw.close()
                cw.close()
        async def main():
            server = await asyncio.start_server(handle, "0.0.0.0", port, backlog=512)
            async with server:
                await server.serve_forever()
        asyncio.run(main())
        """;

    /// <summary>
    /// The forwarder's definition: the workspace's image running <see cref="RelayScript"/> as the workspace user, no
    /// capabilities, read-only, small limits and no reservation; on the server's node; on the workspace's internal
    /// overlay (to reach Jupyter) and on its own ordinary one (for the host-mode port the hub connects to).
    /// </summary>
    internal ServiceCreateParameters ForwarderParameters(WorkspaceStartRequest request, string image, string node, string network, string forwarderNetwork)
    {
        var labels = new Dictionary<string, string>
        {
            [ManagedLabel] = "true",
            [WorkspaceLabel] = request.Id,
            [RoleLabel] = "forwarder",
        };
        return new ServiceCreateParameters
        {
            RegistryAuth = AuthFor(image),
            Service = new ServiceSpec
            {
                Name = ForwarderName(request.Id),
                Labels = labels,
                Mode = new ServiceMode { Replicated = new ReplicatedService { Replicas = 1 } },
                TaskTemplate = new TaskSpec
                {
                    ContainerSpec = new ContainerSpec
                    {
                        Image = image,
                        User = SwarmBackendOptions.User,
                        Command = ["python3", "-c", RelayScript, ServiceName(request.Id), SwarmBackendOptions.JupyterPort.ToString(CultureInfo.InvariantCulture)],
                        Env = ["PYTHONDONTWRITEBYTECODE=1"],
                        Labels = new Dictionary<string, string>(labels),
                        CapabilityDrop = ["ALL"],
                        ReadOnly = true,
                        StopGracePeriod = (long)TimeSpan.FromSeconds(2).TotalNanoseconds,
                    },
                    Resources = new ResourceRequirements
                    {
                        Limits = new SwarmLimit { NanoCPUs = 500_000_000, MemoryBytes = 64L << 20, Pids = 32 },
                    },
                    RestartPolicy = RestartOnFailure(),
                    Placement = new Placement { Constraints = [$"node.id=={node}"] },
                    Networks =
                    [
                        new NetworkAttachmentConfig { Target = network },
                        new NetworkAttachmentConfig { Target = forwarderNetwork },
                    ],
                },
                EndpointSpec = new EndpointSpec
                {
                    Mode = "dnsrr",
                    Ports = [new PortConfig { Protocol = "tcp", TargetPort = SwarmBackendOptions.JupyterPort, PublishMode = "host" }],
                },
            },
        };
    }

    /// <summary>
    /// An existing home may hold files of the uid the images had before <see cref="WorkspaceUser.Uid"/>. Swarm has no
    /// remote volume access, so a one-shot service (restart condition none) of the workspace's image runs
    /// <see cref="WorkspaceUser.TakeOverScript"/> on the home's node: root with CAP_CHOWN and CAP_DAC_READ_SEARCH only,
    /// on the workspace's own overlay (swarm services cannot have no network; nothing else is on that one). A no-op
    /// once the home's directory is the user's. Waits for it to finish; a node that cannot run it fails the start.
    /// </summary>
    private async Task TakeOverHomeAsync(WorkspaceStartRequest request, string image, string pin, string network, CancellationToken ct)
    {
        var name = ServiceName(request.Id) + "-home";
        await RemoveServiceAsync(name, ct);
        ServiceCreateResponse created;
        try
        {
            created = await _manager.Swarm.CreateServiceAsync(TakeOverParameters(request, name, image, pin, network), ct);
        }
        catch (DockerApiException ex)
        {
            throw new WorkspaceStartException(WorkspaceFailure.Backend, $"the swarm refused the home take-over service: {Message(ex)}");
        }

        try
        {
            DateTimeOffset? unschedulableSince = null;
            while (true)
            {
                var task = await CurrentTaskAsync(created.ID, ct);
                var state = task?.Status?.State ?? TaskState.New;
                if (state == TaskState.Complete)
                {
                    return;
                }

                if (state is TaskState.Failed or TaskState.Rejected or TaskState.Shutdown or TaskState.Orphaned)
                {
                    var logs = await GetLogsAsync(new WorkspaceHandle(request.Id, Name, JsonSerializer.SerializeToElement(new { service = created.ID })), 5, ct);
                    throw new WorkspaceStartException(WorkspaceFailure.Backend,
                        $"the home {request.HomeVolume} could not be given to uid {WorkspaceUser.Uid}: {TaskDetail(task!)} {logs.Trim()}".TrimEnd());
                }

                if (state == TaskState.Pending && !string.IsNullOrEmpty(task?.Status?.Err))
                {
                    unschedulableSince ??= _time.GetUtcNow();
                    if (_time.GetUtcNow() - unschedulableSince > _options.UnschedulableTimeout)
                    {
                        var nodes = await NodesAsync(ct);
                        throw new WorkspaceStartException(WorkspaceFailure.Capacity,
                            $"the swarm cannot place the workspace's home take-over: {task!.Status!.Err}{PinNote(pin, nodes)}");
                    }
                }

                await Task.Delay(TimeSpan.FromMilliseconds(250), _time, ct);
            }
        }
        finally
        {
            await RemoveServiceAsync(created.ID, CancellationToken.None);
        }
    }

    /// <summary>The one-shot take-over service: on the home's node, root with two capabilities, small limits, never restarted.</summary>
    internal ServiceCreateParameters TakeOverParameters(WorkspaceStartRequest request, string name, string image, string pin, string network)
    {
        var labels = new Dictionary<string, string>
        {
            [ManagedLabel] = "true",
            [WorkspaceLabel] = request.Id,
            [RoleLabel] = "home-takeover",
        };
        if (request.HomeId.Length > 0)
        {
            labels[HomeLabel] = request.HomeId;
        }

        return new ServiceCreateParameters
        {
            RegistryAuth = AuthFor(image),
            Service = new ServiceSpec
            {
                Name = name,
                Labels = labels,
                Mode = new ServiceMode { Replicated = new ReplicatedService { Replicas = 1 } },
                TaskTemplate = new TaskSpec
                {
                    ContainerSpec = new ContainerSpec
                    {
                        Image = image,
                        User = "0:0",
                        Command = ["/bin/sh", "-c", WorkspaceUser.TakeOverScript(SwarmBackendOptions.HomePath)],
                        Labels = new Dictionary<string, string>(labels),
                        CapabilityDrop = ["ALL"],
                        CapabilityAdd = ["CAP_CHOWN", "CAP_DAC_READ_SEARCH"],
                        Mounts =
                        [
                            new Mount
                            {
                                Type = "volume", Source = request.HomeVolume, Target = SwarmBackendOptions.HomePath,
                                VolumeOptions = new VolumeOptions { NoCopy = true },
                            },
                        ],
                    },
                    Resources = new ResourceRequirements
                    {
                        Limits = new SwarmLimit { NanoCPUs = 500_000_000, MemoryBytes = 256L << 20, Pids = 64 },
                    },
                    RestartPolicy = new SwarmRestartPolicy { Condition = "none" },
                    Placement = new Placement { Constraints = [$"node.id=={pin}"] },
                    Networks = [new NetworkAttachmentConfig { Target = network }],
                },
            },
        };
    }

    /// <summary>
    /// The workspace's own overlay: named by its ID, labelled like every object, not attachable by other containers;
    /// internal (no way out) for an isolated size. With <paramref name="forwarder"/>: the isolated workspace's
    /// second, ordinary overlay, which only its forwarder joins.
    /// </summary>
    internal static NetworksCreateParameters NetworkParameters(WorkspaceStartRequest request, bool forwarder = false)
    {
        var labels = new Dictionary<string, string>
        {
            [ManagedLabel] = "true",
            [WorkspaceLabel] = request.Id,
            [WorkspaceLabels.Owner] = request.Owner,
            [WorkspaceLabels.Name] = request.Name,
        };
        if (request.OwnerId.Length > 0)
        {
            labels[WorkspaceLabels.OwnerId] = request.OwnerId;
        }

        return new NetworksCreateParameters
        {
            Name = WorkspaceIds.NetworkName(request.Id) + (forwarder ? "-fwd" : ""),
            Driver = "overlay",
            Scope = "swarm",
            CheckDuplicate = true, // engines before API 1.44 would otherwise create a second network of the same name
            Attachable = false,
            Internal = !forwarder && request.Size.Network == WorkspaceNetwork.Isolated,
            Labels = labels,
        };
    }

    /// <summary>
    /// Creates the workspace's overlay (and for an isolated size its forwarder's), or reuses one a crashed start left
    /// (same name, this workspace's label, an overlay of the same kind); any other network labelled with this
    /// workspace is removed first. Returns the networks' IDs.
    /// </summary>
    private async Task<(string Network, string? ForwarderNetwork)> EnsureNetworksAsync(WorkspaceStartRequest request, CancellationToken ct)
    {
        var wanted = new List<NetworksCreateParameters> { NetworkParameters(request) };
        if (request.Size.Network == WorkspaceNetwork.Isolated)
        {
            wanted.Add(NetworkParameters(request, forwarder: true));
        }

        var ids = new string?[wanted.Count];
        foreach (var existing in await NetworksOfAsync(request.Id, ct))
        {
            var i = wanted.FindIndex(p => existing.Name == p.Name && existing.Driver == "overlay" && existing.Internal == p.Internal);
            if (i >= 0 && ids[i] is null)
            {
                ids[i] = existing.ID;
            }
            else
            {
                await RemoveNetworkAsync(existing.ID, ct);
            }
        }

        for (var i = 0; i < wanted.Count; i++)
        {
            try
            {
                ids[i] ??= (await _manager.Networks.CreateNetworkAsync(wanted[i], ct)).ID;
            }
            catch (DockerApiException ex)
            {
                throw new WorkspaceStartException(WorkspaceFailure.Backend, $"the swarm refused the workspace network {wanted[i].Name}: {Message(ex)}");
            }
        }

        return (ids[0]!, ids.Length > 1 ? ids[1] : null);
    }

    /// <summary>
    /// Removes workspace overlays that no service of their workspace (server or home take-over) uses and that are
    /// older than <see cref="SwarmBackendOptions.OrphanNetworkAge"/>: what a start or stop killed between the network
    /// and the service leaves. A stopped workspace has no network (stop removes it), and a start makes it again.
    /// </summary>
    public Task<IReadOnlyList<string>> SweepOrphansAsync(CancellationToken ct) => AnsweredAsync(() => SweepOrphanNetworksAsync(ct), ct);

    private async Task<IReadOnlyList<string>> SweepOrphanNetworksAsync(CancellationToken ct)
    {
        var networks = (await _manager.Networks.ListNetworksAsync(new NetworksListParameters
        {
            Filters = new Dictionary<string, IDictionary<string, bool>> { ["label"] = new Dictionary<string, bool> { [$"{ManagedLabel}=true"] = true } },
        }, ct)).Where(n => n.Scope == "swarm" && n.Labels?.ContainsKey(WorkspaceLabel) == true).ToList();
        if (networks.Count == 0)
        {
            return [];
        }

        var inUse = (await ManagedServicesAsync(ct)).Select(s => (s.Spec.Labels is { } l && l.TryGetValue(WorkspaceLabel, out var w) ? w : null)).OfType<string>().ToHashSet(StringComparer.Ordinal);
        var removed = new List<string>();
        foreach (var n in networks)
        {
            var workspace = n.Labels[WorkspaceLabel];
            var age = _time.GetUtcNow() - IsoTime.Utc(n.Created);
            if (inUse.Contains(workspace) || age < _options.OrphanNetworkAge)
            {
                continue;
            }

            try
            {
                await _manager.Networks.DeleteNetworkAsync(n.ID, ct);
                removed.Add($"removed network {n.Name} (no service of workspace {workspace} for {age.TotalMinutes:0} min)");
            }
            catch (DockerApiException ex) when (ex.StatusCode is HttpStatusCode.NotFound or HttpStatusCode.Conflict
                                                || Message(ex).Contains("in use", StringComparison.OrdinalIgnoreCase))
            {
                // Gone meanwhile, or a start is using it again: not an orphan after all.
            }
        }

        return removed;
    }

    /// <summary>The swarm networks labelled with this workspace (found by label, never by name).</summary>
    private async Task<IReadOnlyList<NetworkResponse>> NetworksOfAsync(string workspaceId, CancellationToken ct)
    {
        var networks = await _manager.Networks.ListNetworksAsync(new NetworksListParameters
        {
            Filters = new Dictionary<string, IDictionary<string, bool>>
            {
                ["label"] = new Dictionary<string, bool> { [$"{WorkspaceLabel}={workspaceId}"] = true },
            },
        }, ct);
        return networks.Where(n => n.Scope == "swarm").ToList();
    }

    /// <summary>
    /// Removes a workspace network, and waits until the swarm no longer lists it. The engine deletes a network its own
    /// node has a copy of (a task of the workspace ran there) from that node only and answers as if done, while the
    /// swarm keeps it; the next delete reaches the swarm. Right after its services are removed the manager may also
    /// still count their tasks on it ("in use"), or answer "not found" for the node's copy a shutting-down task is
    /// taking away. All of that is retried for up to 30 s; then the network is left for the next stop, start or delete
    /// of the workspace (they find it by label).
    /// </summary>
    private async Task RemoveNetworkAsync(string id, CancellationToken ct)
    {
        var deadline = _time.GetUtcNow() + NetworkRemoveTimeout;
        while (true)
        {
            string? why = null;
            try
            {
                await _manager.Networks.DeleteNetworkAsync(id, ct);
            }
            catch (DockerApiException ex) when (ex.StatusCode == HttpStatusCode.NotFound)
            {
            }
            catch (DockerApiException ex) when (ex.StatusCode == HttpStatusCode.Conflict
                                                || Message(ex).Contains("in use", StringComparison.OrdinalIgnoreCase)
                                                || Message(ex).Contains("not found", StringComparison.OrdinalIgnoreCase))
            {
                why = Message(ex);
            }
            catch (DockerApiException ex)
            {
                throw new DsvmException($"the workspace network {id} could not be removed: {Message(ex)}; the next stop or delete of the workspace tries again");
            }

            if (why is null && !await NetworkListedAsync(id, ct))
            {
                return;
            }

            if (_time.GetUtcNow() >= deadline)
            {
                throw new DsvmException(
                    $"the workspace network {id} could not be removed within {NetworkRemoveTimeout.TotalSeconds:0} s: {why ?? "the swarm still lists it"}; the next stop or delete of the workspace tries again");
            }

            await Task.Delay(TimeSpan.FromMilliseconds(500), _time, ct);
        }
    }

    private async Task<bool> NetworkListedAsync(string id, CancellationToken ct)
    {
        try
        {
            await _manager.Networks.InspectNetworkAsync(id, ct);
            return true;
        }
        catch (DockerApiException ex) when (ex.StatusCode == HttpStatusCode.NotFound)
        {
            return false;
        }
    }

    /// <summary>
    /// Pushes an image to the registry ahead of time (a start pushes it too, once per process): lets a hub distribute
    /// a class's image before the class starts, outside any start timeout. Without a registry it does nothing.
    /// </summary>
    public Task PushImageAsync(string image, CancellationToken ct) => _options.Registry is null ? Task.CompletedTask : PushAsync(image, ct);

    private async Task PushAsync(string image, CancellationToken ct)
    {
        var lazy = _pushes.GetOrAdd(image, i => new Lazy<Task>(() => PushOnceAsync(i)));
        try
        {
            await lazy.Value.WaitAsync(ct);
        }
        catch (WorkspaceStartException)
        {
            _pushes.TryRemove(new KeyValuePair<string, Lazy<Task>>(image, lazy));
            throw;
        }
    }

    /// <summary>Tags the local image for the registry and pushes it (layers the registry has are skipped by the engine).</summary>
    private async Task PushOnceAsync(string image)
    {
        var push = _options.PushRegistry ?? _options.Registry!;
        var (repository, tag) = SplitTag(image);
        var target = $"{push}/{repository}";
        try
        {
            await _local.Images.TagImageAsync(image, new ImageTagParameters { RepositoryName = target, Tag = tag, Force = true }, CancellationToken.None);
        }
        catch (DockerApiException ex) when (ex.StatusCode == HttpStatusCode.NotFound)
        {
            throw new WorkspaceStartException(WorkspaceFailure.Image, $"image '{image}' is not in the local engine; build it with `dsvm env build`");
        }
        catch (OperationCanceledException)
        {
            // No token of ours: the request timeout. (The push itself has none: it streams as long as it takes.)
            throw NotAnswering(_options.LocalEngine.ToString(), _options.RequestTimeout);
        }

        var errors = new List<string>();
        try
        {
            await _local.Images.PushImageAsync(target, new ImagePushParameters { Tag = tag }, AuthFor(target) ?? new AuthConfig(),
                new Progress(m =>
                {
                    if ((m.Error?.Message ?? m.ErrorMessage) is { Length: > 0 } e)
                    {
                        lock (errors)
                        {
                            errors.Add(e);
                        }
                    }
                }), CancellationToken.None);
        }
        catch (DockerApiException ex)
        {
            errors.Add(Message(ex));
        }

        if (errors.Count > 0)
        {
            throw new WorkspaceStartException(WorkspaceFailure.Image, $"pushing {image} to {push} failed: {errors[0]}");
        }
    }

    internal static (string Repository, string Tag) SplitTag(string image)
    {
        var slash = image.LastIndexOf('/');
        var colon = image.LastIndexOf(':');
        return colon > slash ? (image[..colon], image[(colon + 1)..]) : (image, "latest");
    }

    /// <summary>Synchronous progress: the engine's stream is read on one thread, errors must not be lost to a post.</summary>
    private sealed class Progress(Action<JSONMessage> onMessage) : IProgress<JSONMessage>
    {
        public void Report(JSONMessage value) => onMessage(value);
    }

    private async Task<string?> FindPinAsync(string homeVolume, CancellationToken ct)
    {
        try
        {
            var config = await _manager.Configs.InspectConfigAsync(PinName(homeVolume), ct);
            return config.Spec.Labels is { } l && l.TryGetValue(NodeLabel, out var node) ? node : null;
        }
        catch (DockerApiException ex) when (ex.StatusCode == HttpStatusCode.NotFound)
        {
            return null;
        }
    }

    /// <summary>Remembers which node holds the home: a swarm config (stored by the managers, survives hub restarts).</summary>
    private async Task SavePinAsync(WorkspaceStartRequest request, string node, CancellationToken ct)
    {
        var data = JsonSerializer.SerializeToUtf8Bytes(new { volume = request.HomeVolume, node });
        try
        {
            await _manager.Configs.CreateConfigAsync(new SwarmCreateConfigParameters
            {
                Config = new SwarmConfigSpec
                {
                    Name = PinName(request.HomeVolume),
                    Data = data,
                    Labels = new Dictionary<string, string>
                    {
                        [ManagedLabel] = "true",
                        [WorkspaceLabel] = request.Id,
                        [HomeLabel] = request.HomeVolume,
                        [NodeLabel] = node,
                    },
                },
            }, ct);
        }
        catch (DockerApiException ex) when (ex.StatusCode == HttpStatusCode.Conflict)
        {
            // Recorded already (a concurrent start of the same home cannot happen: the manager serialises per workspace).
        }
    }

    /// <summary>The task that counts: the newest one Swarm wants running, else the newest of all.</summary>
    private async Task<TaskResponse?> CurrentTaskAsync(string service, CancellationToken ct)
    {
        IList<TaskResponse> tasks;
        try
        {
            tasks = await _manager.Tasks.ListAsync(new TasksListParameters
            {
                Filters = new Dictionary<string, IDictionary<string, bool>> { ["service"] = new Dictionary<string, bool> { [service] = true } },
            }, ct);
        }
        catch (DockerApiException ex) when (ex.StatusCode == HttpStatusCode.NotFound)
        {
            return null;
        }

        return tasks.Where(t => t.DesiredState == TaskState.Running).OrderByDescending(t => t.CreatedAt).FirstOrDefault()
            ?? tasks.OrderByDescending(t => t.CreatedAt).FirstOrDefault();
    }

    private async Task<IReadOnlyList<NodeListResponse>> NodesAsync(CancellationToken ct)
    {
        try
        {
            return (await _manager.Swarm.ListNodesAsync(ct)).ToList();
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            throw NotAnswering(ManagerEndpoint, _options.RequestTimeout);
        }
        catch (DockerApiException ex)
        {
            throw new EnvironmentNotReadyException($"the swarm manager at {_options.ManagerEndpoint} cannot list nodes: {Message(ex)} (is it a manager of an initialised swarm?)");
        }
        catch (HttpRequestException ex)
        {
            throw new EnvironmentNotReadyException($"the swarm manager at {_options.ManagerEndpoint} is unreachable: {ex.Message}");
        }
    }

    /// <summary>The node's address as the swarm knows it (managers may report 0.0.0.0 in Status: use their manager address).</summary>
    internal static string? NodeAddress(NodeListResponse node)
    {
        var addr = node.Status?.Addr;
        if (string.IsNullOrEmpty(addr) || addr == "0.0.0.0")
        {
            addr = node.ManagerStatus?.Addr is { Length: > 0 } m ? m[..m.LastIndexOf(':')] : null;
        }

        return addr;
    }

    private static Uri? EndpointOf(TaskResponse task, IEnumerable<NodeListResponse> nodes)
    {
        var port = task.Status?.PortStatus?.Ports?.FirstOrDefault(p => p.TargetPort == SwarmBackendOptions.JupyterPort && p.PublishedPort > 0);
        var node = nodes.FirstOrDefault(n => n.ID == task.NodeID);
        if (port is null || node is null || NodeAddress(node) is not { } addr)
        {
            return null;
        }

        var host = addr.Contains(':', StringComparison.Ordinal) ? $"[{addr}]" : addr;
        return new Uri($"http://{host}:{port.PublishedPort.ToString(CultureInfo.InvariantCulture)}/");
    }

    private static string Describe(IEnumerable<NodeListResponse> nodes, string? id)
    {
        var node = id is null ? null : nodes.FirstOrDefault(n => n.ID == id);
        return node is null || id is null ? id ?? "(none)" : $"{node.Description?.Hostname} ({NodeAddress(node)}, {id[..Math.Min(12, id.Length)]})";
    }

    private static string PinNote(string? pin, IEnumerable<NodeListResponse> nodes)
    {
        if (pin is null)
        {
            return "";
        }

        var node = nodes.FirstOrDefault(n => n.ID == pin);
        var availability = node?.Spec?.Availability ?? "gone";
        var state = node?.Status?.State ?? "gone";
        return $"; its home is pinned to node {Describe(nodes, pin)}, which is {availability} and {state}";
    }

    /// <summary>A running task's last state change is the one to running: when its server started.</summary>
    private static DateTimeOffset? RunningSince(TaskResponse task) =>
        task.Status?.Timestamp is { Year: > 1 } t ? IsoTime.Utc(t) : null;

    private static string TaskDetail(TaskResponse task)
    {
        var s = task.Status;
        var text = string.Join(": ", new[] { s?.Message, s?.Err }.Where(x => !string.IsNullOrWhiteSpace(x)));
        if (s?.ContainerStatus is { ExitCode: not 0 } c)
        {
            text += $" (exit code {c.ExitCode})";
        }

        return text.Length > 0 ? text : "no detail";
    }

    private static string ServiceRef(WorkspaceHandle handle) =>
        handle.State.ValueKind == JsonValueKind.Object && handle.State.TryGetProperty("service", out var n) && n.GetString() is { } s ? s : handle.Id;

    /// <summary>Removes the service (its task's container stops on its node); the home volume stays there.</summary>
    public Task StopAsync(WorkspaceHandle handle, CancellationToken ct) => AnsweredAsync(async () =>
    {
        foreach (var id in await ServicesOfAsync(handle.Id, ct))
        {
            await RemoveServiceAsync(id, ct);
        }

        // Then its overlay (found by label: a network whose service is gone, from a crash, goes too).
        foreach (var network in await NetworksOfAsync(handle.Id, ct))
        {
            await RemoveNetworkAsync(network.ID, ct);
        }

        return true;
    }, ct);

    private async Task<IReadOnlyList<string>> ServicesOfAsync(string workspaceId, CancellationToken ct)
    {
        var services = await _manager.Swarm.ListServicesAsync(new ServicesListParameters
        {
            Filters = new ServiceFilter { Label = [$"{WorkspaceLabel}={workspaceId}"] },
        }, ct);
        return services.Select(s => s.ID).ToList();
    }

    /// <summary>Removes a service and waits (up to 30 s) until its containers are gone, so its home is free again.</summary>
    private async Task RemoveServiceAsync(string nameOrId, CancellationToken ct)
    {
        string id;
        try
        {
            id = (await _manager.Swarm.InspectServiceAsync(nameOrId, ct)).ID;
            await _manager.Swarm.RemoveServiceAsync(id, ct);
        }
        catch (DockerApiException ex) when (ex.StatusCode == HttpStatusCode.NotFound)
        {
            return;
        }

        // The removed service's tasks stay listed (desired state "remove") until their nodes have shut them down.
        var deadline = _time.GetUtcNow() + TimeSpan.FromSeconds(30);
        while (_time.GetUtcNow() < deadline
               && (await _manager.Tasks.ListAsync(ct)).Any(t => t.ServiceID == id && t.Status?.State <= TaskState.Running))
        {
            await Task.Delay(TimeSpan.FromMilliseconds(250), _time, ct);
        }
    }

    public Task<WorkspaceStatus> GetStatusAsync(WorkspaceHandle handle, CancellationToken ct) => AnsweredAsync(() => ServiceStatusAsync(handle, ct), ct);

    private async Task<WorkspaceStatus> ServiceStatusAsync(WorkspaceHandle handle, CancellationToken ct)
    {
        var service = ServiceRef(handle);
        SwarmService spec;
        try
        {
            spec = await _manager.Swarm.InspectServiceAsync(service, ct);
        }
        catch (DockerApiException ex) when (ex.StatusCode == HttpStatusCode.NotFound)
        {
            return new WorkspaceStatus(false, false, "service not found");
        }

        var task = await CurrentTaskAsync(spec.ID, ct);
        var nodes = await NodesAsync(ct);
        var pin = spec.Spec.TaskTemplate?.Placement?.Constraints?.FirstOrDefault(c => c.StartsWith("node.id==", StringComparison.Ordinal))?["node.id==".Length..];
        if (task is null)
        {
            return new WorkspaceStatus(true, false, "no task" + PinNote(pin, nodes));
        }

        var state = task.Status?.State ?? TaskState.New;
        if (state == TaskState.Running && task.DesiredState == TaskState.Running)
        {
            if (spec.Spec.Labels?.TryGetValue(ForwarderLabel, out var forwarder) != true)
            {
                return new WorkspaceStatus(true, true, $"running on {Describe(nodes, task.NodeID)}", EndpointOf(task, nodes), RunningSince(task));
            }

            // Isolated: the way in is the forwarder's port. Without it the hub cannot reach Jupyter: not running.
            var relay = await CurrentTaskAsync(forwarder!, ct);
            if (relay is { DesiredState: TaskState.Running, Status.State: TaskState.Running } && EndpointOf(relay, nodes) is { } endpoint)
            {
                return new WorkspaceStatus(true, true, $"running on {Describe(nodes, task.NodeID)} (isolated, reached through its forwarder)", endpoint, RunningSince(task));
            }

            return new WorkspaceStatus(true, false, relay is null
                ? $"the server runs on {Describe(nodes, task.NodeID)}, but its forwarder {forwarder} is gone: stop and start the workspace"
                : $"the server runs on {Describe(nodes, task.NodeID)}, but its forwarder is {(relay.Status?.State ?? TaskState.New).ToString().ToLowerInvariant()}: {TaskDetail(relay)}");
        }

        var detail = $"{state.ToString().ToLowerInvariant()}: {TaskDetail(task)}";
        if (state <= TaskState.Pending || pin is not null && nodes.FirstOrDefault(n => n.ID == pin) is not { Spec.Availability: "active", Status.State: "ready" })
        {
            detail += PinNote(pin, nodes);
        }

        return new WorkspaceStatus(true, false, detail);
    }

    public Task DeleteAsync(WorkspaceHandle handle, string homeVolume, bool keepHome, CancellationToken ct) =>
        AnsweredAsync(async () =>
        {
            await DeleteServiceAsync(handle, homeVolume, keepHome, ct);
            return true;
        }, ct);

    private async Task DeleteServiceAsync(WorkspaceHandle handle, string homeVolume, bool keepHome, CancellationToken ct)
    {
        await StopAsync(handle, ct);
        if (keepHome)
        {
            return;
        }

        var pin = await FindPinAsync(homeVolume, ct);
        if (pin is null)
        {
            return; // never started: no node has the home
        }

        var nodes = await NodesAsync(ct);
        var node = nodes.FirstOrDefault(n => n.ID == pin);
        if (node is not null)
        {
            var engine = EngineOf(node)
                ?? throw new DsvmException(
                    $"the home volume {homeVolume} is on node {Describe(nodes, pin)}, which has no engine in the backend's NodeEngines; remove it there with `docker volume rm {homeVolume}`");
            await RemoveVolumeOnNodeAsync(engine, homeVolume, Describe(nodes, pin), ct);
        }

        // A node that left the swarm took the volume with it: forget the pin either way.
        try
        {
            await _manager.Configs.RemoveConfigAsync(PinName(homeVolume), ct);
        }
        catch (DockerApiException ex) when (ex.StatusCode == HttpStatusCode.NotFound)
        {
        }
    }

    private Uri? EngineOf(NodeListResponse node)
    {
        foreach (var key in new[] { node.ID, node.Description?.Hostname, NodeAddress(node) })
        {
            if (key is not null && _options.NodeEngines.TryGetValue(key, out var uri))
            {
                return uri;
            }
        }

        return null;
    }

    /// <summary>Removes the volume through the node's own engine, retrying while the stopping container still holds it.</summary>
    private async Task RemoveVolumeOnNodeAsync(Uri engine, string volume, string nodeName, CancellationToken ct)
    {
        using var client = new DockerClientConfiguration(engine, defaultTimeout: _options.RequestTimeout).CreateClient();
        var deadline = _time.GetUtcNow() + TimeSpan.FromSeconds(30);
        while (true)
        {
            try
            {
                await client.Volumes.RemoveAsync(volume, force: false, ct);
                return;
            }
            catch (DockerApiException ex) when (ex.StatusCode == HttpStatusCode.NotFound)
            {
                return;
            }
            catch (DockerApiException ex) when (ex.StatusCode == HttpStatusCode.Conflict && _time.GetUtcNow() < deadline)
            {
                await Task.Delay(TimeSpan.FromMilliseconds(500), _time, ct);
            }
            catch (DockerApiException ex)
            {
                throw new DsvmException($"the home volume {volume} on node {nodeName} could not be removed: {Message(ex)}");
            }
            catch (HttpRequestException ex)
            {
                throw new DsvmException($"the engine of node {nodeName} ({engine}) is unreachable, so the home volume {volume} stays: {ex.Message}");
            }
            catch (OperationCanceledException) when (!ct.IsCancellationRequested)
            {
                throw NotAnswering($"{engine} (node {nodeName})", _options.RequestTimeout);
            }
        }
    }

    /// <summary>The last lines of the service's log: a stream, which Docker.DotNet gives no timeout, so bounded by the request timeout.</summary>
    public async Task<string> GetLogsAsync(WorkspaceHandle handle, int tailLines, CancellationToken ct)
    {
        using var timeout = new CancellationTokenSource(_options.RequestTimeout, _time);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(ct, timeout.Token);
        try
        {
            using var stream = await _manager.Swarm.GetServiceLogsAsync(ServiceRef(handle), tty: false, new ServiceLogsParameters
            {
                ShowStdout = true, ShowStderr = true, Tail = tailLines.ToString(CultureInfo.InvariantCulture),
            }, linked.Token);
            var (stdout, stderr) = await stream.ReadOutputToEndAsync(linked.Token);
            return string.Join('\n', (stdout + stderr).TrimEnd('\n').Split('\n').TakeLast(tailLines));
        }
        catch (DockerApiException ex) when (ex.StatusCode == HttpStatusCode.NotFound)
        {
            return "";
        }
        catch (OperationCanceledException) when (timeout.IsCancellationRequested && !ct.IsCancellationRequested)
        {
            throw NotAnswering(ManagerEndpoint, _options.RequestTimeout);
        }
    }

    /// <summary>Every service OpenDSVM made (workspace servers and home take-overs), found by label.</summary>
    private async Task<IEnumerable<SwarmService>> ManagedServicesAsync(CancellationToken ct) =>
        await _manager.Swarm.ListServicesAsync(new ServicesListParameters { Filters = new ServiceFilter { Label = [$"{ManagedLabel}=true"] } }, ct);

    public async IAsyncEnumerable<ManagedResource> ListManagedAsync([EnumeratorCancellation] CancellationToken ct)
    {
        var services = await AnsweredAsync(() => ManagedServicesAsync(ct), ct);
        var running = (await AnsweredAsync(() => _manager.Tasks.ListAsync(new TasksListParameters
        {
            Filters = new Dictionary<string, IDictionary<string, bool>> { ["desired-state"] = new Dictionary<string, bool> { ["running"] = true } },
        }, ct), ct)).Where(t => t.Status?.State == TaskState.Running).Select(t => t.ServiceID).ToHashSet(StringComparer.Ordinal);
        foreach (var s in services)
        {
            if (s.Spec.Labels is null || !s.Spec.Labels.TryGetValue(WorkspaceLabel, out var id) || s.Spec.Labels.ContainsKey(RoleLabel))
            {
                continue;
            }

            yield return new ManagedResource(id, s.Spec.Name, running.Contains(s.ID),
                new WorkspaceHandle(id, Name, JsonSerializer.SerializeToElement(new { container = s.ID, service = s.Spec.Name })))
            {
                // Owner, name, environment, size, image, home: what `dsvm doctor --repair` rebuilds a lost record from.
                Labels = new Dictionary<string, string>(s.Spec.Labels, StringComparer.Ordinal),
            };
        }
    }

    /// <summary>Homes are recorded by their pin; a home never started has no node and does not exist yet.</summary>
    public async Task<bool> HomeExistsAsync(string homeVolume, CancellationToken ct) => await AnsweredAsync(() => FindPinAsync(homeVolume, ct), ct) is not null;

    /// <summary>The largest schedulable node: a workspace must fit on one node (the manager checks sizes against this).</summary>
    public async Task<HostCapacity> GetCapacityAsync(CancellationToken ct)
    {
        var usable = (await NodesAsync(ct)).Where(Schedulable).Select(Capacity).ToList();
        return usable.Count == 0
            ? new HostCapacity(0, 0, 0)
            : new HostCapacity(usable.Max(c => c.Cpus), usable.Max(c => c.MemoryBytes), usable.Max(c => c.Gpus));
    }

    private static bool Schedulable(NodeListResponse n) => n.Status?.State == "ready" && n.Spec?.Availability == "active";

    private HostCapacity Capacity(NodeListResponse n)
    {
        var r = n.Description?.Resources;
        var gpus = r?.GenericResources?.Sum(g =>
            g.DiscreteResourceSpec is { } d && d.Kind == _options.GpuResource ? (int)d.Value
            : g.NamedResourceSpec is { } named && named.Kind == _options.GpuResource ? 1 : 0) ?? 0;
        return new HostCapacity((int)((r?.NanoCPUs ?? 0) / 1_000_000_000), r?.MemoryBytes ?? 0, gpus);
    }

    /// <summary>For <c>dsvm doctor</c>: manager reachable, nodes by state and availability, total capacity of usable nodes.</summary>
    public async Task<BackendHealth> DescribeAsync(CancellationToken ct)
    {
        IReadOnlyList<NodeListResponse> nodes;
        try
        {
            nodes = await NodesAsync(ct);
        }
        catch (EnvironmentNotReadyException ex)
        {
            return new BackendHealth(false, ex.Message, null);
        }

        var ready = nodes.Count(n => n.Status?.State == "ready");
        var active = nodes.Count(n => n.Spec?.Availability == "active");
        var drain = nodes.Count(n => n.Spec?.Availability == "drain");
        var pause = nodes.Count(n => n.Spec?.Availability == "pause");
        var usable = nodes.Where(Schedulable).Select(Capacity).ToList();
        var total = new HostCapacity(usable.Sum(c => c.Cpus), usable.Sum(c => c.MemoryBytes), usable.Sum(c => c.Gpus));
        var largest = usable.Count == 0 ? null : usable.MaxBy(c => (c.Cpus, c.MemoryBytes));
        var detail = $"swarm at {_options.ManagerEndpoint}: {nodes.Count} nodes, {ready} ready, {active} active, {drain} drain, {pause} pause; "
            + $"schedulable {total.Cpus} CPUs, {total.MemoryBytes / (1024.0 * 1024 * 1024):0.#} GiB, {total.Gpus} GPUs"
            + (largest is null ? "" : $" (largest node {largest.Cpus} CPUs, {largest.MemoryBytes / (1024.0 * 1024 * 1024):0.#} GiB)")
            + (_options.Registry is null ? "; no registry: every node needs the images" : $"; registry {_options.Registry}");
        return new BackendHealth(usable.Count > 0, detail, total);
    }

    private string ManagerEndpoint => $"{_options.ManagerEndpoint} (swarm manager)";

    /// <summary>
    /// Calls to the manager with Docker.DotNet's default timeout (<see cref="SwarmBackendOptions.RequestTimeout"/>):
    /// a cancellation that is not the caller's is that timeout, the manager not answering; one not-ready line.
    /// </summary>
    private async Task<T> AnsweredAsync<T>(Func<Task<T>> calls, CancellationToken ct)
    {
        try
        {
            return await calls();
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            throw NotAnswering(ManagerEndpoint, _options.RequestTimeout);
        }
    }

    private static EnvironmentNotReadyException NotAnswering(string endpoint, TimeSpan waited) =>
        EngineFaults.NotAnswering("Docker", endpoint, waited, "`systemctl status docker` on that machine, dockerd's log");

    private static string Message(DockerApiException ex)
    {
        try
        {
            return JsonDocument.Parse(ex.ResponseBody).RootElement.GetProperty("message").GetString() ?? ex.Message;
        }
        catch (JsonException)
        {
            return ex.ResponseBody ?? ex.Message;
        }
    }

    public void Dispose()
    {
        _manager.Dispose();
        _local.Dispose();
    }
}
