using Dsvm.Core;
using k8s;
using k8s.Models;

namespace Dsvm.Kubernetes.Tests;

public sealed class PodStatusReaderTests
{
    private static V1Pod Pod(string statusJson, string? node = "node-1") => new()
    {
        Metadata = new V1ObjectMeta { Name = "dsvm-ws-abc123" },
        Spec = new V1PodSpec { NodeName = node, Containers = [] },
        Status = KubernetesJson.Deserialize<V1PodStatus>(statusJson),
    };

    [Fact]
    public void Running_SaysWhere()
    {
        var view = PodStatusReader.Read(Pod("""{"phase":"Running","containerStatuses":[{"name":"jupyter","state":{"running":{}}}]}"""));
        Assert.Equal(new PodView(true, "running on node node-1"), view);
    }

    [Fact]
    public void Unschedulable_QuotesTheScheduler_WithoutThePreemptionNote()
    {
        var view = PodStatusReader.Read(Pod("""
            {"phase":"Pending","conditions":[{"type":"PodScheduled","status":"False","reason":"Unschedulable",
             "message":"0/3 nodes are available: 3 Insufficient nvidia.com/gpu. preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod."}]}
            """, node: null));
        Assert.False(view.Running);
        Assert.True(view.Unschedulable);
        Assert.Equal(WorkspaceFailure.Capacity, view.Failure);
        Assert.Equal("not schedulable: 0/3 nodes are available: 3 Insufficient nvidia.com/gpu.", view.Detail);
    }

    [Theory]
    [InlineData("ImagePullBackOff")]
    [InlineData("ErrImagePull")]
    [InlineData("InvalidImageName")]
    public void ImageErrors_AreImageFailures(string reason)
    {
        var view = PodStatusReader.Read(Pod($$$$"""
            {"phase":"Pending","containerStatuses":[{"name":"jupyter","state":{"waiting":{"reason":"{{{{reason}}}}","message":"Back-off pulling image \"dsvm/minimal:x\""}}}]}
            """));
        Assert.Equal(WorkspaceFailure.Image, view.Failure);
        Assert.Equal($"image pull failed ({reason}): Back-off pulling image \"dsvm/minimal:x\"", view.Detail);
    }

    [Fact]
    public void CrashLoop_GivesTheLastExitCode()
    {
        var view = PodStatusReader.Read(Pod("""
            {"phase":"Running","containerStatuses":[{"name":"jupyter","state":{"waiting":{"reason":"CrashLoopBackOff"}},"lastState":{"terminated":{"exitCode":2}}}]}
            """));
        Assert.Equal(WorkspaceFailure.Backend, view.Failure);
        Assert.Equal("crash loop: the server keeps exiting (last exit code 2)", view.Detail);
    }

    [Fact]
    public void OutOfMemory_IsSaid()
    {
        var view = PodStatusReader.Read(Pod("""
            {"phase":"Failed","containerStatuses":[{"name":"jupyter","state":{"terminated":{"exitCode":137,"reason":"OOMKilled"}}}]}
            """));
        Assert.Equal("exited, exit code 137, killed: out of memory", view.Detail);
        Assert.False(view.Running);
    }

    [Fact]
    public void Evicted_SaysWhy()
    {
        var view = PodStatusReader.Read(Pod("""{"phase":"Failed","reason":"Evicted","message":"The node was low on resource: memory."}"""));
        Assert.Equal("exited (Evicted: The node was low on resource: memory.)", view.Detail);
    }

    [Fact]
    public void MissingSecret_IsAConfigError()
    {
        var view = PodStatusReader.Read(Pod("""
            {"phase":"Pending","containerStatuses":[{"name":"jupyter","state":{"waiting":{"reason":"CreateContainerConfigError","message":"secret \"dsvm-ws-abc123-token\" not found"}}}]}
            """));
        Assert.Equal(WorkspaceFailure.Backend, view.Failure);
        Assert.Contains("secret \"dsvm-ws-abc123-token\" not found", view.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public void Creating_IsPendingWithoutFailure()
    {
        var view = PodStatusReader.Read(Pod("""{"phase":"Pending","containerStatuses":[{"name":"jupyter","state":{"waiting":{"reason":"ContainerCreating"}}}]}"""));
        Assert.Equal(new PodView(false, "pending: ContainerCreating"), view);
        Assert.Equal(new PodView(false, "pending: waiting for a node"), PodStatusReader.Read(Pod("""{"phase":"Pending"}""", node: null)));
    }
}
