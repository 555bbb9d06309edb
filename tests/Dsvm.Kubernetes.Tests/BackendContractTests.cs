using System.Text;
using System.Text.Json;
using Dsvm.Core;
using Dsvm.Core.Workspaces;
using k8s;
using k8s.Models;
using static Dsvm.Kubernetes.Tests.TestRequests;

namespace Dsvm.Kubernetes.Tests;

/// <summary>
/// The backend against a fake API server on 127.0.0.1: the REST calls the real client issues, with their bodies.
/// </summary>
public sealed class BackendContractTests : IAsyncLifetime
{
    private FakeKubernetesApi _api = null!;

    private static readonly KubernetesBackendOptions Options = new()
    {
        Namespace = "dsvm-test",
        StorageClass = "standard",
        HomeSize = "5Gi",
        PollInterval = TimeSpan.FromMilliseconds(10),
        UnschedulableGrace = TimeSpan.Zero,
    };

    public async Task InitializeAsync() => _api = await FakeKubernetesApi.StartAsync();

    public async Task DisposeAsync() => await _api.DisposeAsync();

    private KubernetesWorkspaceBackend Backend(KubernetesBackendOptions? options = null) => new(_api.Client(), options ?? Options);

    private const string Base = "/api/v1/namespaces/dsvm-test";

    [Fact]
    public async Task Start_CreatesClaimSecretServiceAndPod_AndReturnsTheServiceEndpoint()
    {
        var launch = await Backend().StartAsync(Request(), null, CancellationToken.None);

        Assert.Equal(new Uri("http://dsvm-ws-abc123.dsvm-test.svc:8888/"), launch.Endpoint);
        Assert.Equal("dsvm-ws-abc123", launch.Handle.State.GetProperty("pod").GetString());
        Assert.Equal("dsvm-ws-abc123", launch.Handle.State.GetProperty("container").GetString());
        var writes = _api.Requests.Where(r => r.Method is "POST" or "PUT" or "DELETE").Select(r => r.ToString()).ToList();
        Assert.Equal(
        [
            $"POST {Base}/persistentvolumeclaims",
            $"POST {Base}/secrets",
            $"POST {Base}/services",
            $"POST /apis/networking.k8s.io/v1/namespaces/dsvm-test/networkpolicies",
            $"POST {Base}/pods",
        ], writes);
        Assert.Single(_api.Calls("GET", $"{Base}/persistentvolumeclaims/dsvm-home-alice-lab"));
        Assert.Contains(_api.Requests, r => r.Method == "GET" && r.Path == $"{Base}/pods" && r.Query.Contains("labelSelector=io.opendsvm.workspace%3Dws-abc123", StringComparison.Ordinal));

        var pod = KubernetesJson.Deserialize<V1Pod>(_api.Calls("POST", $"{Base}/pods").Single().Body);
        Assert.Equal("2", pod.Spec.Containers[0].Resources.Limits["cpu"].ToString());
        Assert.Equal("4Gi", pod.Spec.Containers[0].Resources.Limits["memory"].ToString());
        Assert.Equal("dsvm-ws-abc123-token", pod.Spec.Containers[0].Env.Single(e => e.Name == "JUPYTER_TOKEN").ValueFrom.SecretKeyRef.Name);
        var claim = KubernetesJson.Deserialize<V1PersistentVolumeClaim>(_api.Calls("POST", $"{Base}/persistentvolumeclaims").Single().Body);
        Assert.Equal(("standard", "5Gi"), (claim.Spec.StorageClassName, claim.Spec.Resources.Requests["storage"].ToString()));

        // The token travels only in the Secret's body, base64-encoded: never in clear on the wire.
        var secretBody = _api.Calls("POST", $"{Base}/secrets").Single().Body;
        Assert.Contains(Convert.ToBase64String(Encoding.UTF8.GetBytes(Token)), secretBody, StringComparison.Ordinal);
        Assert.All(_api.Requests, r => Assert.DoesNotContain(Token, r.Body, StringComparison.Ordinal));
    }

    [Fact]
    public async Task Start_WaitsWhileThePodIsPending_AndReportsIt()
    {
        _api.PendingReads = 3;
        var progress = new List<string>();
        var launch = await Backend().StartAsync(Request(), new SyncProgress(progress), CancellationToken.None);
        Assert.Contains("pod dsvm-ws-abc123: pending: ContainerCreating", progress);
        Assert.True(_api.Calls("GET", $"{Base}/pods/dsvm-ws-abc123").Count() >= 3);
        Assert.True((await Backend().GetStatusAsync(launch.Handle, CancellationToken.None)).Running);
    }

    [Fact]
    public async Task Start_PodIpMode_ReturnsThePodAddress()
    {
        var launch = await Backend(Options with { EndpointMode = KubernetesEndpointMode.PodIp }).StartAsync(Request(), null, CancellationToken.None);
        Assert.Equal(new Uri("http://10.244.1.7:8888/"), launch.Endpoint);
    }

    [Fact]
    public async Task Start_TemplateMode_FillsTheTemplate()
    {
        var options = Options with { EndpointMode = KubernetesEndpointMode.Template, EndpointTemplate = "http://{service}.{namespace}.cluster.example:{port}/" };
        var launch = await Backend(options).StartAsync(Request(), null, CancellationToken.None);
        Assert.Equal(new Uri("http://dsvm-ws-abc123.dsvm-test.cluster.example:8888/"), launch.Endpoint);
        Assert.Throws<UsageException>(() => Backend(Options with { EndpointMode = KubernetesEndpointMode.Template }));
    }

    [Fact]
    public async Task Start_Unschedulable_FailsWithCapacity_AndRemovesThePod()
    {
        _api.PodStatusOnCreate = _ => System.Text.Json.Nodes.JsonNode.Parse("""
            {"phase":"Pending","conditions":[{"type":"PodScheduled","status":"False","reason":"Unschedulable",
             "message":"0/3 nodes are available: 3 Insufficient nvidia.com/gpu. preemption: 0/3 nodes are available."}]}
            """)!.AsObject();
        var ex = await Assert.ThrowsAsync<WorkspaceStartException>(() => Backend().StartAsync(Request(size: "gpu-small", gpu: true), null, CancellationToken.None));
        Assert.Equal(WorkspaceFailure.Capacity, ex.Reason);
        Assert.Equal("pod dsvm-ws-abc123 not schedulable: 0/3 nodes are available: 3 Insufficient nvidia.com/gpu.", ex.Message);
        Assert.Single(_api.Calls("DELETE", $"{Base}/pods/dsvm-ws-abc123"));
        var pod = KubernetesJson.Deserialize<V1Pod>(_api.Calls("POST", $"{Base}/pods").Single().Body);
        Assert.Equal("1", pod.Spec.Containers[0].Resources.Limits["nvidia.com/gpu"].ToString());
    }

    [Fact]
    public async Task Start_ImagePullBackOff_FailsWithImage()
    {
        _api.PodStatusOnCreate = _ => FakeKubernetesApi.PendingStatus("ImagePullBackOff");
        var ex = await Assert.ThrowsAsync<WorkspaceStartException>(() => Backend().StartAsync(Request(), null, CancellationToken.None));
        Assert.Equal(WorkspaceFailure.Image, ex.Reason);
        Assert.StartsWith("pod dsvm-ws-abc123 image pull failed (ImagePullBackOff)", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Stop_DeletesOnlyThePod_AndWaitsUntilItIsGone()
    {
        var backend = Backend();
        _api.TerminatingReads = 3;
        var launch = await backend.StartAsync(Request(), null, CancellationToken.None);
        await backend.StopAsync(launch.Handle, CancellationToken.None);

        var delete = _api.Calls("DELETE", $"{Base}/pods/dsvm-ws-abc123").Single();
        Assert.Contains("gracePeriodSeconds=10", delete.Query, StringComparison.Ordinal);
        Assert.Empty(_api.Names("pods"));
        Assert.Equal(["dsvm-ws-abc123"], _api.Names("services"));
        Assert.Equal(["dsvm-ws-abc123-token"], _api.Names("secrets"));
        Assert.Equal(["dsvm-home-alice-lab"], _api.Names("persistentvolumeclaims"));
        var status = await backend.GetStatusAsync(launch.Handle, CancellationToken.None);
        Assert.Equal(new WorkspaceStatus(false, false, "pod not found"), status);
    }

    [Fact]
    public async Task Stop_APodThatNeverGoes_IsDeletedWithoutGrace()
    {
        var backend = Backend(Options with { StopTimeout = TimeSpan.FromMilliseconds(100) });
        var launch = await backend.StartAsync(Request(), null, CancellationToken.None);
        _api.TerminatingReads = 1000;
        var deletesBefore = _api.Calls("DELETE", $"{Base}/pods/dsvm-ws-abc123").Count();
        var stop = backend.StopAsync(launch.Handle, CancellationToken.None);
        while (_api.Calls("DELETE", $"{Base}/pods/dsvm-ws-abc123").Count() < deletesBefore + 2)
        {
            Assert.False(stop.IsCompleted);
            await Task.Delay(20);
        }

        Assert.Contains("gracePeriodSeconds=0", _api.Calls("DELETE", $"{Base}/pods/dsvm-ws-abc123").Last().Query, StringComparison.Ordinal);
        await stop.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Empty(_api.Names("pods"));
    }

    [Fact]
    public async Task StartAgainWithAnotherSize_KeepsTheHome_AndSizesTheNewPod()
    {
        var backend = Backend();
        var first = await backend.StartAsync(Request(size: "medium"), null, CancellationToken.None);
        await backend.StopAsync(first.Handle, CancellationToken.None);
        var second = await backend.StartAsync(Request(size: "large"), null, CancellationToken.None);

        Assert.Single(_api.Calls("POST", $"{Base}/persistentvolumeclaims"));
        Assert.Equal(2, _api.Calls("POST", $"{Base}/pods").Count());
        // The secret existed: it was replaced (same token); the service was kept (its second create answered 409).
        Assert.Single(_api.Calls("PUT", $"{Base}/secrets/dsvm-ws-abc123-token"));
        Assert.Equal(["dsvm-ws-abc123"], _api.Names("services"));
        var pod = KubernetesJson.Deserialize<V1Pod>(_api.Get("pods", "dsvm-ws-abc123")!.ToJsonString());
        Assert.Equal("4", pod.Spec.Containers[0].Resources.Limits["cpu"].ToString());
        Assert.Equal("16Gi", pod.Spec.Containers[0].Resources.Limits["memory"].ToString());
        Assert.Equal("dsvm-home-alice-lab", pod.Spec.Volumes.Single(v => v.Name == "home").PersistentVolumeClaim.ClaimName);
        Assert.True(await backend.HomeExistsAsync("dsvm-home-alice-lab", CancellationToken.None));
        Assert.Equal(first.Endpoint, second.Endpoint);
    }

    [Fact]
    public async Task Start_ReplacesALeftoverPod()
    {
        var backend = Backend();
        await backend.StartAsync(Request(), null, CancellationToken.None);
        await backend.StartAsync(Request(), null, CancellationToken.None);
        Assert.Single(_api.Calls("DELETE", $"{Base}/pods/dsvm-ws-abc123"));
        Assert.Equal(["dsvm-ws-abc123"], _api.Names("pods"));
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Delete_RemovesPodServiceSecret_AndTheHomeOnlyWhenAsked(bool keepHome)
    {
        var backend = Backend();
        var launch = await backend.StartAsync(Request(), null, CancellationToken.None);
        await backend.DeleteAsync(launch.Handle, "dsvm-home-alice-lab", keepHome, CancellationToken.None);

        Assert.Empty(_api.Names("pods"));
        Assert.Empty(_api.Names("services"));
        Assert.Empty(_api.Names("secrets"));
        Assert.Empty(_api.Names("networkpolicies"));
        Assert.Equal(keepHome ? ["dsvm-home-alice-lab"] : [], _api.Names("persistentvolumeclaims"));
        Assert.Equal(keepHome ? 0 : 1, _api.Calls("DELETE", $"{Base}/persistentvolumeclaims/dsvm-home-alice-lab").Count());
        Assert.Equal(!keepHome, !await backend.HomeExistsAsync("dsvm-home-alice-lab", CancellationToken.None));

        // Deleting again is a no-op: everything is gone already.
        await backend.DeleteAsync(launch.Handle, "dsvm-home-alice-lab", keepHome: false, CancellationToken.None);
    }

    [Fact]
    public async Task ListManaged_FindsRunningAndStoppedWorkspacesByLabel()
    {
        var backend = Backend();
        await backend.StartAsync(Request(id: "ws-aaaaaa", name: "one"), null, CancellationToken.None);
        var two = await backend.StartAsync(Request(id: "ws-bbbbbb", name: "two"), null, CancellationToken.None);
        await backend.StopAsync(two.Handle, CancellationToken.None);

        var found = new List<ManagedResource>();
        await foreach (var r in backend.ListManagedAsync(CancellationToken.None))
        {
            found.Add(r);
        }

        Assert.Equal(["ws-aaaaaa", "ws-bbbbbb"], found.Select(f => f.WorkspaceId).Order());
        // With the labels `dsvm doctor --repair` rebuilds records from, running or not.
        Assert.All(found, f => Assert.Equal("alice", f.Labels["io.opendsvm.owner"]));
        Assert.Equal("two", found.Single(f => f.WorkspaceId == "ws-bbbbbb").Labels["io.opendsvm.name"]);
        Assert.True(found.Single(f => f.WorkspaceId == "ws-aaaaaa").Running);
        Assert.False(found.Single(f => f.WorkspaceId == "ws-bbbbbb").Running);
        Assert.Contains(_api.Requests, r => r.Path == $"{Base}/pods" && r.Query.Contains("labelSelector=io.opendsvm.managed%3Dtrue", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Logs_ComeFromThePodLog_WithTheTail()
    {
        var backend = Backend();
        var launch = await backend.StartAsync(Request(), null, CancellationToken.None);
        _api.Logs["dsvm-ws-abc123"] = "one\ntwo\nthree\nfour\n";
        Assert.Equal("three\nfour", await backend.GetLogsAsync(launch.Handle, 2, CancellationToken.None));
        var call = _api.Calls("GET", $"{Base}/pods/dsvm-ws-abc123/log").Single();
        Assert.Contains("tailLines=2", call.Query, StringComparison.Ordinal);
        Assert.Contains("container=jupyter", call.Query, StringComparison.Ordinal);

        await backend.StopAsync(launch.Handle, CancellationToken.None);
        Assert.Equal("", await backend.GetLogsAsync(launch.Handle, 2, CancellationToken.None));
    }

    [Fact]
    public async Task Capacity_SumsReadySchedulableNodes()
    {
        _api.Nodes.Add(FakeKubernetesApi.Node("a", "3920m", "16Gi"));
        _api.Nodes.Add(FakeKubernetesApi.Node("b", "8", "32Gi", gpus: 2));
        _api.Nodes.Add(FakeKubernetesApi.Node("down", "8", "32Gi", ready: false));
        _api.Nodes.Add(FakeKubernetesApi.Node("cordoned", "8", "32Gi", cordoned: true));
        var capacity = await Backend().GetCapacityAsync(CancellationToken.None);
        Assert.Equal(new Dsvm.Core.Sizes.HostCapacity(11, 48L << 30, 2), capacity);
    }

    [Fact]
    public async Task Describe_SaysVersionNodesAndAllocatable()
    {
        _api.Nodes.Add(FakeKubernetesApi.Node("a", "4", "16Gi"));
        _api.Nodes.Add(FakeKubernetesApi.Node("b", "4", "16Gi", gpus: 1));
        _api.Nodes.Add(FakeKubernetesApi.Node("c", "4", "16Gi", ready: false));
        var health = await Backend().DescribeAsync(CancellationToken.None);
        Assert.True(health.Healthy, health.Detail);
        Assert.Contains("Kubernetes v1.31.0-fake", health.Detail, StringComparison.Ordinal);
        Assert.Contains("2/3 nodes ready, allocatable 8 CPUs, 32 GiB, 1 nvidia.com/gpu; namespace dsvm-test", health.Detail, StringComparison.Ordinal);
        Assert.Equal(new Dsvm.Core.Sizes.HostCapacity(8, 32L << 30, 1), health.Capacity);
    }

    [Fact]
    public async Task Describe_MissingNamespace_IsUnhealthyAndSaysSo()
    {
        _api.Nodes.Add(FakeKubernetesApi.Node("a", "4", "16Gi"));
        var health = await Backend(Options with { Namespace = "nope" }).DescribeAsync(CancellationToken.None);
        Assert.False(health.Healthy);
        Assert.StartsWith("namespace nope does not exist", health.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task UnreachableApi_IsAClearNotReadyError()
    {
        var port = _api.Url;
        await _api.DisposeAsync();
        _api = await FakeKubernetesApi.StartAsync();
        var backend = new KubernetesWorkspaceBackend(new k8s.Kubernetes(new KubernetesClientConfiguration { Host = port }), Options);
        var ex = await Assert.ThrowsAsync<EnvironmentNotReadyException>(() => backend.GetCapacityAsync(CancellationToken.None));
        Assert.StartsWith($"the Kubernetes API server at {port}", ex.Message, StringComparison.Ordinal);
        Assert.Contains("is unreachable", ex.Message, StringComparison.Ordinal);
        Assert.False((await backend.DescribeAsync(CancellationToken.None)).Healthy);
    }

    [Fact]
    public async Task Forbidden_NamesTheMissingPermission()
    {
        _api.Forbidden.Add($"GET {Base}/pods");
        var ex = await Assert.ThrowsAsync<DsvmException>(() => Backend().StopAsync(new WorkspaceHandle("ws-abc123", "kubernetes", JsonDocument.Parse("{}").RootElement), CancellationToken.None));
        Assert.StartsWith("the hub's Kubernetes account may not list pods in namespace dsvm-test (see deploy/kubernetes/10-rbac.yaml): forbidden", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task NoKubeconfig_IsAClearNotReadyError_OnFirstUse()
    {
        var backend = new KubernetesWorkspaceBackend(new KubernetesBackendOptions { KubeconfigPath = "/nonexistent/kubeconfig" });
        Assert.Equal("kubernetes", backend.Name);
        var ex = await Assert.ThrowsAsync<EnvironmentNotReadyException>(() => backend.GetCapacityAsync(CancellationToken.None));
        Assert.StartsWith("no usable Kubernetes configuration (/nonexistent/kubeconfig)", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Start_GivenUpWhilePending_RemovesThePod()
    {
        _api.PodStatusOnCreate = _ => FakeKubernetesApi.PendingStatus("ContainerCreating");
        using var cts = new CancellationTokenSource(TimeSpan.FromMilliseconds(300));
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => Backend().StartAsync(Request(), null, cts.Token));
        Assert.Single(_api.Calls("DELETE", $"{Base}/pods/dsvm-ws-abc123"));
        Assert.Equal(["dsvm-home-alice-lab"], _api.Names("persistentvolumeclaims"));
    }

    [Theory]
    [InlineData("Bad_Namespace", "10Gi", "IfNotPresent", "Kubernetes namespace 'Bad_Namespace' is not valid")]
    [InlineData("dsvm", "ten gigs", "IfNotPresent", "Kubernetes home size 'ten gigs' is not a quantity")]
    [InlineData("dsvm", "10Gi", "Sometimes", "Kubernetes image pull policy 'Sometimes' is not one of Always, IfNotPresent, Never")]
    public void BadOptions_AreRefusedWhenTheBackendIsMade(string ns, string homeSize, string pull, string message)
    {
        var ex = Assert.Throws<UsageException>(() => Backend(Options with { Namespace = ns, HomeSize = homeSize, ImagePullPolicy = pull }));
        Assert.StartsWith(message, ex.Message, StringComparison.Ordinal);
    }

    private sealed class SyncProgress(List<string> sink) : IProgress<WorkspaceProgress>
    {
        public void Report(WorkspaceProgress value)
        {
            lock (sink)
            {
                sink.Add(value.Message);
            }
        }
    }
}
