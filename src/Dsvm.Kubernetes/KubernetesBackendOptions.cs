namespace Dsvm.Kubernetes;

/// <summary>How the hub reaches a workspace's Jupyter server.</summary>
public enum KubernetesEndpointMode
{
    /// <summary><c>http://SERVICE.NAMESPACE.svc:8888/</c>: the hub runs inside the cluster (the default).</summary>
    Service,

    /// <summary><c>http://POD-IP:8888/</c>: the hub runs outside the cluster on a host that routes to the pod network.</summary>
    PodIp,

    /// <summary><see cref="KubernetesBackendOptions.EndpointTemplate"/>, e.g. a DNS name a VPN or tunnel resolves.</summary>
    Template,
}

/// <summary>Settings of the Kubernetes backend (bound from <c>DSVM__Kubernetes__...</c> by the hub).</summary>
public sealed record KubernetesBackendOptions
{
    /// <summary>Namespace of every workspace object; it must exist (the deploy manifests create it).</summary>
    public string Namespace { get; init; } = "dsvm";

    /// <summary>A kubeconfig file; null: the in-cluster service account, else <c>KUBECONFIG</c> or <c>~/.kube/config</c>.</summary>
    public string? KubeconfigPath { get; init; }

    /// <summary>Storage class of the home claims; null: the cluster's default class.</summary>
    public string? StorageClass { get; init; }

    /// <summary>Size requested for a new home claim (a Kubernetes quantity).</summary>
    public string HomeSize { get; init; } = "10Gi";

    /// <summary>Access mode of home claims; ReadWriteOnce (one node at a time) is all a single pod needs.</summary>
    public string HomeAccessMode { get; init; } = "ReadWriteOnce";

    /// <summary>Always, IfNotPresent or Never.</summary>
    public string ImagePullPolicy { get; init; } = "IfNotPresent";

    /// <summary>Put before every image name (e.g. <c>registry.example.com/</c>): the local tag dsvm/x:y becomes PREFIX + dsvm/x:y.</summary>
    public string? ImageRegistryPrefix { get; init; }

    /// <summary>Node labels every workspace pod must match.</summary>
    public IReadOnlyDictionary<string, string> NodeSelector { get; init; } = new Dictionary<string, string>();

    /// <summary>Extra node labels for GPU workspaces (e.g. <c>nvidia.com/gpu.present=true</c>), merged over <see cref="NodeSelector"/>.</summary>
    public IReadOnlyDictionary<string, string> GpuNodeSelector { get; init; } = new Dictionary<string, string>();

    /// <summary>Name of an image pull secret in the namespace, for a private registry.</summary>
    public string? ImagePullSecret { get; init; }

    public KubernetesEndpointMode EndpointMode { get; init; } = KubernetesEndpointMode.Service;

    /// <summary>
    /// Labels of the hub's pods in the namespace: each workspace's NetworkPolicy admits connections to its port 8888
    /// only from pods with all of them (deploy/kubernetes/30-hub.yaml sets <c>app.kubernetes.io/name=dsvm-hub</c>).
    /// </summary>
    public IReadOnlyDictionary<string, string> HubPodLabels { get; init; } = new Dictionary<string, string> { ["app.kubernetes.io/name"] = "dsvm-hub" };

    /// <summary>
    /// Address ranges (CIDR) of a hub outside the cluster (<see cref="KubernetesEndpointMode.PodIp"/>), also admitted
    /// by each workspace's NetworkPolicy. Empty: only the hub's pods.
    /// </summary>
    public IReadOnlyList<string> HubCidrs { get; init; } = [];

    /// <summary>
    /// For <see cref="KubernetesEndpointMode.Template"/>: an absolute URL with <c>{service}</c>, <c>{namespace}</c>,
    /// <c>{pod}</c>, <c>{podIp}</c>, <c>{id}</c>, <c>{port}</c>. The hub proxy forwards to its scheme, host and port only.
    /// </summary>
    public string? EndpointTemplate { get; init; }

    /// <summary>How long a pod may stay unschedulable before the start fails (the scheduler retries while volumes bind).</summary>
    public TimeSpan UnschedulableGrace { get; init; } = TimeSpan.FromSeconds(15);

    /// <summary>How long stop waits for a pod to go (its grace period is 10 s) before deleting it with no grace.</summary>
    public TimeSpan StopTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>How often the backend reads a pod while waiting for it to run or to go.</summary>
    public TimeSpan PollInterval { get; init; } = TimeSpan.FromMilliseconds(500);

    /// <summary>
    /// How long the API server may take to answer a request (<c>request-timeout</c> in backends.yaml): until the
    /// response headers, so a followed log stream is not cut. A hung API server is a not-ready error after this.
    /// </summary>
    public TimeSpan RequestTimeout { get; init; } = TimeSpan.FromSeconds(30);

    public const int JupyterPort = 8888;
    public const string HomePath = "/home/dsvm";
    public const long UserId = Dsvm.Core.Workspaces.WorkspaceUser.Uid;
}
