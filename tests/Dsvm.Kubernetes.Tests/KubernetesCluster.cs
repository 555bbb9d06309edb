using Dsvm.Testing;
using k8s;

namespace Dsvm.Kubernetes.Tests;

/// <summary>
/// The real cluster of an integration run: the one <c>KUBECONFIG</c> names, whose API must answer (under test.sh,
/// the lab of scripts/kubernetes-lab.sh). Without it the cluster tests are skipped with a visible reason, except
/// with <c>DSVM_REQUIRE_KUBERNETES=1</c> (test.sh), where they fail.
/// </summary>
public static class KubernetesCluster
{
    private static readonly SemaphoreSlim Exclusive = new(1, 1);

    /// <summary>
    /// The cluster, for one test at a time: the lab's one node has 2 CPUs for their pods, and the outage test rejects
    /// the API server's port, which every other test (and the hub's pod) needs. Work that does not touch the cluster
    /// (the end-to-end test's images) runs before it is taken, alongside another class's cluster test.
    /// </summary>
    public static async Task<IDisposable> UseAsync()
    {
        if (!await Exclusive.WaitAsync(TimeSpan.FromMinutes(20)))
        {
            throw new TimeoutException("another test has held the Kubernetes cluster for 20 minutes");
        }

        return new Release();
    }

    private sealed class Release : IDisposable
    {
        private int _released;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _released, 1) == 0)
            {
                Exclusive.Release();
            }
        }
    }

    public static string? Kubeconfig =>
        Environment.GetEnvironmentVariable("KUBECONFIG") is { Length: > 0 } k ? k.Split(Path.PathSeparator)[0] : null;

    /// <summary>
    /// An OpenDSVM environment image the cluster can pull (e.g. the minimal image pushed to its registry). Unset: the
    /// <c>minimal</c> environment built on the local engine (shared with the Docker tests) with pull policy
    /// <c>Never</c>, which only works on a cluster whose kubelet uses this engine (the lab).
    /// </summary>
    public static string? Image => Environment.GetEnvironmentVariable("DSVM_K8S_TEST_IMAGE") is { Length: > 0 } i ? i : null;

    public static string Namespace => Environment.GetEnvironmentVariable("DSVM_K8S_TEST_NAMESPACE") is { Length: > 0 } n ? n : "dsvm-test";

    public static string? StorageClass => Environment.GetEnvironmentVariable("DSVM_K8S_TEST_STORAGECLASS") is { Length: > 0 } s ? s : null;

    /// <summary>The image and pull policy of test workspaces (see <see cref="Image"/>).</summary>
    public static async Task<(string Image, string PullPolicy)> WorkspaceImageAsync()
    {
        if (Image is { } image)
        {
            return (image, "IfNotPresent");
        }

        var (_, record) = await BuiltEnvironment.GetAsync("minimal");
        return (record.Image, "Never");
    }

    public static k8s.Kubernetes Client() => new(KubernetesClientConfiguration.BuildConfigFromConfigFile(Kubeconfig!));

    private static readonly Lazy<string?> Reason = new(() =>
    {
        if (Kubeconfig is not { } path)
        {
            return "KUBECONFIG not set: no Kubernetes cluster to test against (./test.sh starts the lab cluster)";
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

    /// <summary>Why the cluster tests cannot run, even under DSVM_REQUIRE_KUBERNETES=1 (then the tests fail with it).</summary>
    public static string? UnavailableReason => Reason.Value;

    public static string? SkipReason => Reason.Value is { } r && Environment.GetEnvironmentVariable("DSVM_REQUIRE_KUBERNETES") != "1" ? r : null;
}

/// <summary>A test against a real cluster: skipped with a visible reason when there is none (fails under test.sh).</summary>
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
