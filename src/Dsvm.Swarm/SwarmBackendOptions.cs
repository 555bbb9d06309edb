using Dsvm.Core;
using Dsvm.Core.Sizes;

namespace Dsvm.Swarm;

/// <summary>Settings of the Docker Swarm backend.</summary>
public sealed record SwarmBackendOptions
{
    /// <summary>A manager's engine API: <c>unix:///var/run/docker.sock</c> on a manager, or <c>tcp://manager:2376</c> (TLS is the operator's job).</summary>
    public required Uri ManagerEndpoint { get; init; }

    /// <summary>
    /// Registry the nodes pull from (<c>host:port</c>, e.g. <c>10.0.5.1:5000</c>). When set, a workspace's image
    /// <c>dsvm/ENV:TAG</c> is pushed there from <see cref="LocalEngine"/> before its first start and services use
    /// <c>REGISTRY/dsvm/ENV:TAG</c>. When null, every node must already have the image.
    /// </summary>
    public string? Registry { get; init; }

    /// <summary>
    /// Address the local engine pushes to when it differs from <see cref="Registry"/> (the same registry seen from the
    /// build machine, e.g. <c>127.0.0.1:5000</c>, which Docker trusts without TLS). Defaults to <see cref="Registry"/>.
    /// </summary>
    public string? PushRegistry { get; init; }

    /// <summary>
    /// Logins for the registries the images name: the push to <see cref="PushRegistry"/>, and every service whose
    /// image names a registry with a login carries it, as <c>docker service create --with-registry-auth</c> does, so
    /// whichever node runs the task can pull. None: anonymous.
    /// </summary>
    public RegistryLogins? Logins { get; init; }

    /// <summary>The engine that holds the built images (the one <c>dsvm env build</c> uses).</summary>
    public Uri LocalEngine { get; init; } = DefaultLocalEngine();

    /// <summary>
    /// Engine endpoints of the nodes, keyed by node id, hostname or address: used only to delete a home volume on
    /// the node that holds it (Swarm's API has no remote volume removal). Nodes missing here keep their homes on delete
    /// with an error naming the node and the command to run there.
    /// </summary>
    public IReadOnlyDictionary<string, Uri> NodeEngines { get; init; } = new Dictionary<string, Uri>();

    /// <summary>Generic resource kind that GPU sizes reserve (nodes advertise it with <c>--node-generic-resource</c>).</summary>
    public string GpuResource { get; init; } = "NVIDIA-GPU";

    /// <summary>Extra placement constraints for every workspace (e.g. <c>node.labels.dsvm==true</c>).</summary>
    public IReadOnlyList<string> Constraints { get; init; } = [];

    public long PidsLimit { get; init; } = 1024;

    /// <summary>
    /// How long a call to an engine (the manager, the local engine, a node's) may go unanswered (<c>request-timeout</c>
    /// in backends.yaml): Docker.DotNet's default timeout. A log tail gets it too; an image push streams as long as it
    /// takes. A hung engine (accepts the connection, never answers) is a not-ready error after this.
    /// </summary>
    public TimeSpan RequestTimeout { get; init; } = Dsvm.Core.DockerEndpoint.DefaultRequestTimeout;

    /// <summary>Restarts Swarm may make of a crashed server (restart policy on-failure) before it gives up.</summary>
    public int MaxRestarts { get; init; } = 3;

    /// <summary>A start whose task stays unschedulable (no node fits, home node drained) this long fails.</summary>
    public TimeSpan UnschedulableTimeout { get; init; } = TimeSpan.FromSeconds(15);

    /// <summary>
    /// A workspace overlay without a service of its workspace for this long is an orphan (a start or stop killed
    /// between the network and the service) and is removed by reconciliation; shorter would race a start, which
    /// creates the network just before the service.
    /// </summary>
    public TimeSpan OrphanNetworkAge { get; init; } = TimeSpan.FromMinutes(10);

    public const int JupyterPort = 8888;
    public const string HomePath = "/home/dsvm";
    public const string User = Dsvm.Core.Workspaces.WorkspaceUser.DockerUser;

    public static Uri DefaultLocalEngine() => Dsvm.Core.DockerEndpoint.Default();
}

