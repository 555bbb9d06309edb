using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;
using Dsvm.Core;
using Dsvm.Core.Sizes;
using Dsvm.Core.Workspaces;
using k8s.Models;

namespace Dsvm.Kubernetes;

/// <summary>
/// The Kubernetes objects of one workspace, built from a start request and the options: pure functions, no I/O,
/// so every field the cluster sees is unit-tested. Names derive from the workspace id (<c>dsvm-ws-…</c>), which is
/// short and always a valid DNS-1123 label; the home claim is named after the workspace's home volume.
/// </summary>
public static partial class KubernetesObjects
{
    public const string ManagedLabel = "io.opendsvm.managed";
    public const string WorkspaceLabel = "io.opendsvm.workspace";
    public const string HomeLabel = "io.opendsvm.home";
    public const string ContainerName = "jupyter";
    public const string TokenKey = "token";
    public const string GpuResource = "nvidia.com/gpu";

    public static string PodName(string id) => "dsvm-" + ValidId(id);

    public static string ServiceName(string id) => "dsvm-" + ValidId(id);

    public static string SecretName(string id) => "dsvm-" + ValidId(id) + "-token";

    public static string NetworkPolicyName(string id) => "dsvm-" + ValidId(id);

    /// <summary>The label selector of everything that belongs to one workspace.</summary>
    public static string SelectorOf(string id) => $"{WorkspaceLabel}={ValidId(id)}";

    public static string ManagedSelector => $"{ManagedLabel}=true";

    /// <summary>The workspace id: it becomes part of object names and a label value, so it must be a short DNS label.</summary>
    public static string ValidId(string id) =>
        id.Length <= 50 && DnsLabel().IsMatch(id)
            ? id
            : throw new UsageException($"workspace id '{id}' cannot name Kubernetes objects: use up to 50 lowercase letters, digits and '-'");

    /// <summary>A persistent volume claim name: a DNS-1123 subdomain.</summary>
    public static string ValidClaimName(string name) =>
        name.Length <= 253 && DnsSubdomain().IsMatch(name)
            ? name
            : throw new UsageException($"home volume '{name}' is not a valid Kubernetes claim name (lowercase letters, digits, '-' and '.')");

    /// <summary>The CPU quantity: whole cores as "2", fractions in millicores ("500m").</summary>
    public static string CpuQuantity(double vcpus)
    {
        var milli = (long)Math.Round(vcpus * 1000, MidpointRounding.AwayFromZero);
        return milli % 1000 == 0 ? (milli / 1000).ToString(CultureInfo.InvariantCulture) : milli.ToString(CultureInfo.InvariantCulture) + "m";
    }

    /// <summary>The memory quantity in the largest binary unit that is exact ("4Gi", "1536Mi"), else bytes.</summary>
    public static string MemoryQuantity(long bytes)
    {
        foreach (var (unit, factor) in new[] { ("Gi", 1L << 30), ("Mi", 1L << 20), ("Ki", 1L << 10) })
        {
            if (bytes % factor == 0)
            {
                return (bytes / factor).ToString(CultureInfo.InvariantCulture) + unit;
            }
        }

        return bytes.ToString(CultureInfo.InvariantCulture);
    }

    /// <summary>
    /// The image as the cluster pulls it: the registry prefix (if any) before the local tag; an image that already
    /// names its registry (a registry catalog's <c>REGISTRY/dsvm/NAME@sha256:…</c>) is pulled as it is.
    /// </summary>
    public static string ImageRef(string image, KubernetesBackendOptions options) =>
        options.ImageRegistryPrefix is { Length: > 0 } prefix && !ImageReferences.HasRegistry(image) ? prefix.TrimEnd('/') + "/" + image : image;

    /// <summary>The managed labels plus the request's labels that Kubernetes accepts (others are left out, never sent).</summary>
    public static Dictionary<string, string> Labels(string id, IReadOnlyDictionary<string, string>? extra = null)
    {
        var labels = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (k, v) in extra ?? new Dictionary<string, string>())
        {
            if (IsValidLabelKey(k) && IsValidLabelValue(v))
            {
                labels[k] = v;
            }
        }

        labels[ManagedLabel] = "true";
        labels[WorkspaceLabel] = ValidId(id);
        return labels;
    }

    public static bool IsValidLabelValue(string value) => value.Length <= 63 && LabelValue().IsMatch(value);

    public static bool IsValidLabelKey(string key)
    {
        var slash = key.IndexOf('/', StringComparison.Ordinal);
        var name = slash < 0 ? key : key[(slash + 1)..];
        var prefix = slash < 0 ? null : key[..slash];
        return name.Length is > 0 and <= 63 && LabelValue().IsMatch(name)
            && (prefix is null || (prefix.Length <= 253 && DnsSubdomain().IsMatch(prefix)));
    }

    /// <summary>The per-workspace Secret holding the Jupyter token: the pod reads it with a secretKeyRef.</summary>
    public static V1Secret Secret(WorkspaceStartRequest request, KubernetesBackendOptions options) => new()
    {
        ApiVersion = "v1",
        Kind = "Secret",
        Metadata = new V1ObjectMeta
        {
            Name = SecretName(request.Id),
            NamespaceProperty = options.Namespace,
            Labels = Labels(request.Id, request.Labels),
        },
        Type = "Opaque",
        Data = new Dictionary<string, byte[]> { [TokenKey] = Encoding.UTF8.GetBytes(request.Token) },
    };

    /// <summary>The home claim: created once, kept across stop, start and resize; deleted only by delete without keepHome.</summary>
    public static V1PersistentVolumeClaim HomeClaim(WorkspaceStartRequest request, KubernetesBackendOptions options)
    {
        // The home's ID (shared identity scheme) when the request has one; "true" only for homes made before IDs.
        var labels = Labels(request.Id, request.Labels);
        labels[HomeLabel] = request.HomeId is { Length: > 0 } homeId && IsValidLabelValue(homeId) ? homeId : "true";
        if (request.OwnerId is { Length: > 0 } ownerId && IsValidLabelValue(ownerId))
        {
            labels[WorkspaceLabels.OwnerId] = ownerId;
        }

        return new V1PersistentVolumeClaim
        {
            ApiVersion = "v1",
            Kind = "PersistentVolumeClaim",
            Metadata = new V1ObjectMeta { Name = ValidClaimName(request.HomeVolume), NamespaceProperty = options.Namespace, Labels = labels },
            Spec = new V1PersistentVolumeClaimSpec
            {
                AccessModes = [options.HomeAccessMode],
                StorageClassName = options.StorageClass is { Length: > 0 } sc ? sc : null,
                Resources = new V1VolumeResourceRequirements
                {
                    Requests = new Dictionary<string, ResourceQuantity> { ["storage"] = new(options.HomeSize) },
                },
            },
        };
    }

    /// <summary>The ClusterIP Service the hub proxy reaches the workspace through (port 8888 to the pod's jupyter port).</summary>
    public static V1Service Service(WorkspaceStartRequest request, KubernetesBackendOptions options) => new()
    {
        ApiVersion = "v1",
        Kind = "Service",
        Metadata = new V1ObjectMeta
        {
            Name = ServiceName(request.Id),
            NamespaceProperty = options.Namespace,
            Labels = Labels(request.Id, request.Labels),
        },
        Spec = new V1ServiceSpec
        {
            Type = "ClusterIP",
            Selector = new Dictionary<string, string> { [ManagedLabel] = "true", [WorkspaceLabel] = request.Id },
            Ports =
            [
                new V1ServicePort { Name = "jupyter", Protocol = "TCP", Port = KubernetesBackendOptions.JupyterPort, TargetPort = "jupyter" },
            ],
        },
    };

    /// <summary>
    /// The workspace's NetworkPolicy: its pod accepts connections only from the hub's pods (<see
    /// cref="KubernetesBackendOptions.HubPodLabels"/>) and <see cref="KubernetesBackendOptions.HubCidrs"/>, and only on
    /// the Jupyter port; nothing from other workspaces or other pods. Enforced only by a network plugin that
    /// implements NetworkPolicy (Calico, Cilium, ...); a cluster without one accepts the object and ignores it.
    /// A size with <c>network: isolated</c> also gets an Egress policy type with no rule: the pod opens no connection
    /// at all (DNS included; Jupyter needs none, the hub's connections in are answered). <c>internet</c> sizes have no
    /// egress policy: an <c>ipBlock</c> for "everything but the cluster" means different things to different plugins
    /// (Cilium's 0.0.0.0/0 does not cover pods, which would cut DNS), so it is left to the cluster's own policies.
    /// </summary>
    public static V1NetworkPolicy NetworkPolicy(WorkspaceStartRequest request, KubernetesBackendOptions options)
    {
        var from = new List<V1NetworkPolicyPeer>
        {
            new() { PodSelector = new V1LabelSelector { MatchLabels = new Dictionary<string, string>(options.HubPodLabels) } },
        };
        from.AddRange(options.HubCidrs.Select(c => new V1NetworkPolicyPeer { IpBlock = new V1IPBlock { Cidr = c } }));
        var isolated = request.Size.Network == WorkspaceNetwork.Isolated;
        return new V1NetworkPolicy
        {
            ApiVersion = "networking.k8s.io/v1",
            Kind = "NetworkPolicy",
            Metadata = new V1ObjectMeta
            {
                Name = NetworkPolicyName(request.Id),
                NamespaceProperty = options.Namespace,
                Labels = Labels(request.Id, request.Labels),
            },
            Spec = new V1NetworkPolicySpec
            {
                PodSelector = new V1LabelSelector
                {
                    MatchLabels = new Dictionary<string, string> { [ManagedLabel] = "true", [WorkspaceLabel] = request.Id },
                },
                PolicyTypes = isolated ? ["Ingress", "Egress"] : ["Ingress"],
                Egress = isolated ? [] : null,
                Ingress =
                [
                    new V1NetworkPolicyIngressRule
                    {
                        FromProperty = from,
                        Ports = [new V1NetworkPolicyPort { Protocol = "TCP", Port = KubernetesBackendOptions.JupyterPort }],
                    },
                ],
            },
        };
    }

    /// <summary>
    /// The workspace pod: the environment image's own entrypoint, limits = requests from the size (Guaranteed QoS),
    /// the workspace uid (WorkspaceUser) without privileges, the home claim at /home/dsvm, the token from the Secret.
    /// </summary>
    public static V1Pod Pod(WorkspaceStartRequest request, KubernetesBackendOptions options)
    {
        var size = request.Size;
        var resources = new Dictionary<string, ResourceQuantity>
        {
            ["cpu"] = new(CpuQuantity(size.Vcpus)),
            ["memory"] = new(MemoryQuantity(size.MemoryBytes)),
        };
        var limits = new Dictionary<string, ResourceQuantity>(resources);
        var env = new List<V1EnvVar>
        {
            new()
            {
                Name = "JUPYTER_TOKEN",
                ValueFrom = new V1EnvVarSource { SecretKeyRef = new V1SecretKeySelector { Name = SecretName(request.Id), Key = TokenKey } },
            },
            new() { Name = "DSVM_BASE_URL", Value = request.BaseUrl },
            new() { Name = "DSVM_PORT", Value = KubernetesBackendOptions.JupyterPort.ToString(CultureInfo.InvariantCulture) },
            new() { Name = "DSVM_WORKSPACE", Value = request.Name },
            new() { Name = "DSVM_SIZE", Value = size.Name },
            new() { Name = "HOME", Value = KubernetesBackendOptions.HomePath },
        };
        env.AddRange(request.Variables.Select(v => new V1EnvVar { Name = v.Key, Value = v.Value }));
        var nodeSelector = new Dictionary<string, string>(options.NodeSelector);
        List<V1Toleration>? tolerations = null;
        if (request.Gpu && size.Gpus > 0)
        {
            limits[GpuResource] = new(size.Gpus.ToString(CultureInfo.InvariantCulture));
            tolerations = [new V1Toleration { Key = GpuResource, OperatorProperty = "Exists", Effect = "NoSchedule" }];
            foreach (var (k, v) in options.GpuNodeSelector)
            {
                nodeSelector[k] = v;
            }
        }
        else
        {
            env.Add(new V1EnvVar { Name = "CUDA_VISIBLE_DEVICES", Value = "" });
        }

        var shm = Math.Min(size.MemoryBytes / 4, 2L << 30);
        return new V1Pod
        {
            ApiVersion = "v1",
            Kind = "Pod",
            Metadata = new V1ObjectMeta
            {
                Name = PodName(request.Id),
                NamespaceProperty = options.Namespace,
                Labels = Labels(request.Id, request.Labels),
                Annotations = new Dictionary<string, string> { ["io.opendsvm.size"] = size.Name, ["io.opendsvm.home-claim"] = request.HomeVolume },
            },
            Spec = new V1PodSpec
            {
                // The manager owns the lifecycle: a crashed server is reported, not restarted behind its back.
                RestartPolicy = "Never",
                Hostname = request.Name.Length <= 63 && DnsLabel().IsMatch(request.Name) ? request.Name : null,
                AutomountServiceAccountToken = false,
                EnableServiceLinks = false,
                TerminationGracePeriodSeconds = 10,
                SecurityContext = new V1PodSecurityContext
                {
                    RunAsUser = KubernetesBackendOptions.UserId,
                    RunAsGroup = KubernetesBackendOptions.UserId,
                    RunAsNonRoot = true,
                    // A new claim is owned by root: fsGroup makes the home writable for the workspace uid.
                    FsGroup = KubernetesBackendOptions.UserId,
                    FsGroupChangePolicy = "OnRootMismatch",
                    SeccompProfile = new V1SeccompProfile { Type = "RuntimeDefault" },
                },
                NodeSelector = nodeSelector.Count > 0 ? nodeSelector : null,
                Tolerations = tolerations,
                ImagePullSecrets = options.ImagePullSecret is { Length: > 0 } ps ? [new V1LocalObjectReference { Name = ps }] : null,
                Containers =
                [
                    new V1Container
                    {
                        Name = ContainerName,
                        Image = ImageRef(request.Image, options),
                        ImagePullPolicy = options.ImagePullPolicy,
                        Ports = [new V1ContainerPort { Name = "jupyter", ContainerPort = KubernetesBackendOptions.JupyterPort, Protocol = "TCP" }],
                        Env = env,
                        Resources = new V1ResourceRequirements { Requests = resources, Limits = limits },
                        SecurityContext = new V1SecurityContext
                        {
                            RunAsUser = KubernetesBackendOptions.UserId,
                            RunAsGroup = KubernetesBackendOptions.UserId,
                            RunAsNonRoot = true,
                            AllowPrivilegeEscalation = false,
                            Privileged = false,
                            Capabilities = new V1Capabilities { Drop = ["ALL"] },
                            SeccompProfile = new V1SeccompProfile { Type = "RuntimeDefault" },
                        },
                        // TCP only: the Service routes once Jupyter listens. The manager's own probe (with the token) decides readiness.
                        ReadinessProbe = new V1Probe
                        {
                            TcpSocket = new V1TCPSocketAction { Port = KubernetesBackendOptions.JupyterPort },
                            PeriodSeconds = 1,
                            FailureThreshold = 3,
                        },
                        VolumeMounts =
                        [
                            new V1VolumeMount { Name = "home", MountPath = KubernetesBackendOptions.HomePath },
                            new V1VolumeMount { Name = "shm", MountPath = "/dev/shm" },
                        ],
                    },
                ],
                Volumes =
                [
                    new V1Volume { Name = "home", PersistentVolumeClaim = new V1PersistentVolumeClaimVolumeSource { ClaimName = ValidClaimName(request.HomeVolume) } },
                    // Shared memory like the Docker backend's ShmSize (PyTorch data loaders need it); counts against the memory limit.
                    new V1Volume { Name = "shm", EmptyDir = new V1EmptyDirVolumeSource { Medium = "Memory", SizeLimit = new ResourceQuantity(MemoryQuantity(shm)) } },
                ],
            },
        };
    }

    [GeneratedRegex("^[a-z0-9]([-a-z0-9]*[a-z0-9])?\\z")]
    internal static partial Regex DnsLabel();

    [GeneratedRegex(@"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\z")]
    internal static partial Regex DnsSubdomain();

    [GeneratedRegex("^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?\\z")]
    private static partial Regex LabelValue();
}
