using k8s;

namespace Dsvm.Kubernetes.Tests;

/// <summary>
/// The real cluster of an integration run: the one <c>KUBECONFIG</c> names, whose API must answer. Without it the
/// cluster tests are skipped with a visible reason, except with <c>DSVM_REQUIRE_KUBERNETES=1</c>, where they fail.
/// </summary>
public static class KubernetesCluster
{
    public static string? Kubeconfig =>
        Environment.GetEnvironmentVariable("KUBECONFIG") is { Length: > 0 } k ? k.Split(Path.PathSeparator)[0] : null;

    /// <summary>An OpenDSVM environment image the cluster can pull (e.g. the minimal image pushed to its registry).</summary>
    public static string? Image => Environment.GetEnvironmentVariable("DSVM_K8S_TEST_IMAGE") is { Length: > 0 } i ? i : null;

    public static string Namespace => Environment.GetEnvironmentVariable("DSVM_K8S_TEST_NAMESPACE") is { Length: > 0 } n ? n : "dsvm-test";

    public static string? StorageClass => Environment.GetEnvironmentVariable("DSVM_K8S_TEST_STORAGECLASS") is { Length: > 0 } s ? s : null;

    private static readonly Lazy<string?> Reason = new(() =>
    {
        if (Kubeconfig is not { } path)
        {
            return "KUBECONFIG not set: no Kubernetes cluster to test against";
        }

        if (Image is null)
        {
            return "KUBECONFIG is set but DSVM_K8S_TEST_IMAGE is not: name an OpenDSVM environment image the cluster can pull";
        }

        try
        {
            using var client = new k8s.Kubernetes(KubernetesClientConfiguration.BuildConfigFromConfigFile(path));
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
            client.Version.GetCodeAsync(timeout.Token).GetAwaiter().GetResult();
            return null;
        }
        catch (Exception ex)
        {
            return $"KUBECONFIG is set but its API server does not answer: {ex.Message}";
        }
    });

    public static string? SkipReason => Reason.Value is { } r && Environment.GetEnvironmentVariable("DSVM_REQUIRE_KUBERNETES") != "1" ? r : null;
}

/// <summary>A test against a real cluster: skipped with a visible reason when there is none.</summary>
public sealed class KubernetesFactAttribute : FactAttribute
{
    public KubernetesFactAttribute()
    {
        if (KubernetesCluster.SkipReason is { } reason)
        {
            Skip = reason;
        }
    }
}
