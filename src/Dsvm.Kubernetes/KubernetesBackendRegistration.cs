using Dsvm.Core;
using Dsvm.Core.Workspaces;

namespace Dsvm.Kubernetes;

/// <summary>The <c>kubernetes</c> backend type: a pod, service, token secret and home claim per workspace.</summary>
public static class KubernetesBackendRegistration
{
    public const string Type = "kubernetes";

    /// <summary>The longest <c>request-timeout</c>: a day (an API server that takes longer has hung).</summary>
    public static readonly TimeSpan MaxRequestTimeout = TimeSpan.FromDays(1);

    public static BackendRegistry AddKubernetesBackend(this BackendRegistry registry) => registry.Add(new BackendRegistration
    {
        Type = Type,
        Keys =
        [
            "namespace", "kubeconfig", "storage-class", "home-size", "home-access-mode", "image-pull-policy", "image-registry-prefix",
            "image-pull-secret", "endpoint-mode", "endpoint-template", "node-selector", "gpu-node-selector", "request-timeout",
        ],
        Capabilities = new BackendCapabilities { Gpu = true },
        Prepare = section =>
        {
            // Constructed now: its own checks are reported at the section; it connects on first use.
            var backend = section.Checked(() => new KubernetesWorkspaceBackend(Options(section)));
            return () => backend;
        },
        Endpoint = (section, engine) => engine == "Kubernetes" ? $"the API server of {section.Get("kubeconfig") ?? "the default kubeconfig"}" : null,
    });

    public static KubernetesBackendOptions Options(BackendSection s)
    {
        var o = new KubernetesBackendOptions();
        var mode = s.Get("endpoint-mode") switch
        {
            null => o.EndpointMode,
            "service" => KubernetesEndpointMode.Service,
            "pod-ip" => KubernetesEndpointMode.PodIp,
            "template" => KubernetesEndpointMode.Template,
            var other => throw new SpecValidationException([s.Error("endpoint-mode", $"'{other}' is not an endpoint mode (service, pod-ip, template)")]),
        };
        return o with
        {
            Namespace = s.Get("namespace") ?? o.Namespace,
            KubeconfigPath = s.FilePath("kubeconfig"),
            StorageClass = s.Get("storage-class"),
            HomeSize = s.Get("home-size") ?? o.HomeSize,
            HomeAccessMode = s.Get("home-access-mode") ?? o.HomeAccessMode,
            ImagePullPolicy = s.Get("image-pull-policy") ?? o.ImagePullPolicy,
            ImageRegistryPrefix = s.Get("image-registry-prefix"),
            ImagePullSecret = s.Get("image-pull-secret"),
            EndpointMode = mode,
            EndpointTemplate = s.Get("endpoint-template"),
            NodeSelector = s.Pairs("node-selector"),
            GpuNodeSelector = s.Pairs("gpu-node-selector"),
            RequestTimeout = s.Duration("request-timeout", MaxRequestTimeout) ?? o.RequestTimeout,
        };
    }
}
