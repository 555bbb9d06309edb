using System.Net;
using System.Net.Http.Json;
using Dsvm.Core.Sizes;
using Dsvm.Core.Workspaces;
using Dsvm.Testing.Jupyter;

namespace Dsvm.Hub.Tests;

/// <summary>The hub routes each new workspace to the backend configured for its size, and proxies to it.</summary>
[System.Diagnostics.CodeAnalysis.SuppressMessage("Design", "CA1001", Justification = "disposed in DisposeAsync")]
public sealed class BackendRoutingTests : HubTestBase
{
    private readonly FakeJupyterBackend _cluster = new();

    internal override HubOptions Options(HubOptions defaults)
    {
        World.Backends = local => new WorkspaceBackends(
            new Dictionary<string, Func<IWorkspaceBackend>> { ["docker"] = () => local, ["cluster"] = () => _cluster },
            "docker",
            byClass: new Dictionary<SizeClass, string> { [SizeClass.Memory] = "cluster" });
        return defaults;
    }

    public override async Task DisposeAsync()
    {
        await base.DisposeAsync();
        await _cluster.DisposeAsync();
    }

    [Fact]
    public async Task Each_size_runs_where_it_is_routed_and_stays_there_when_resized()
    {
        var session = await UserAsync("alice");
        var alice = Hub.TokenClient((await CreateTokenAsync(session)).Str("token"));
        var small = await StartRunningAsync(alice, "notebook");
        Assert.Equal("docker", small.Str("backend"));
        Assert.NotNull(World.Backend.ServerFor("alice", "notebook"));
        Assert.Null(_cluster.ServerFor("alice", "notebook"));

        var big = await StartRunningAsync(alice, "bigdata", size: "memory-medium");
        Assert.Equal("cluster", big.Str("backend"));
        Assert.NotNull(_cluster.ServerFor("alice", "bigdata"));
        Assert.Null(World.Backend.ServerFor("alice", "bigdata"));

        // The proxy reaches both, each on its own backend.
        await session.Http.GetAsync("user/alice/notebook/api/status").Expect(HttpStatusCode.OK);
        await session.Http.GetAsync("user/alice/bigdata/api/status").Expect(HttpStatusCode.OK);
        Assert.Contains(_cluster.ServerFor("alice", "bigdata")!.Requests, r => r.EndsWith("/api/status", StringComparison.Ordinal));

        // medium is routed to docker, but the home of bigdata lives on the cluster: it stays there.
        var resized = await (await alice.PostAsJsonAsync("api/v1/workspaces/alice/bigdata/resize?wait=true", new { size = "medium" }).Expect(HttpStatusCode.OK)).JsonAsync();
        Assert.Equal("cluster", resized.Str("backend"));
        Assert.Equal("medium", resized.Str("size"));
        Assert.NotNull(_cluster.ServerFor("alice", "bigdata"));
        Assert.Null(World.Backend.ServerFor("alice", "bigdata"));
    }
}
