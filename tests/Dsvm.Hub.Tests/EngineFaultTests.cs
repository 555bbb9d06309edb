using System.Net;
using Dsvm.Core.Sizes;
using Dsvm.Core.Workspaces;
using Dsvm.Docker;

namespace Dsvm.Hub.Tests;

/// <summary>
/// An engine that stops answering mid-life (a real Docker.DotNet client on a socket that does not exist): the request
/// is answered 503 with ProblemDetails naming the engine, never a 500 (issue 12).
/// </summary>
public sealed class EngineFaultTests : HubTestBase
{
    private EngineDownBackend? _backend;

    internal override HubOptions Options(HubOptions defaults)
    {
        World.WrapBackend = b => _backend = new EngineDownBackend(b);
        return defaults;
    }

    [Fact]
    public async Task An_unreachable_engine_is_a_503_naming_it_never_a_500()
    {
        var alice = await UserTokenClientAsync("alice");
        await StartRunningAsync(alice, "ws1");
        _backend!.Down = true;

        var p = await alice.GetAsync("api/v1/workspaces/alice/ws1/logs").ExpectProblem(HttpStatusCode.ServiceUnavailable);
        Assert.Contains("the Docker engine is not reachable", p.Str("detail"), StringComparison.Ordinal);
        Assert.DoesNotContain("Exception", p.ToString(), StringComparison.Ordinal);
        Assert.DoesNotContain("nonexistent", p.ToString(), StringComparison.Ordinal);
    }
}

/// <summary>The fake backend, whose logs and stops go to a Docker engine that is not there once <see cref="Down"/>.</summary>
internal sealed class EngineDownBackend(IWorkspaceBackend inner) : IWorkspaceBackend
{
    private readonly DockerWorkspaceBackend _missing = new(new DockerBackendOptions { Endpoint = new Uri("unix:///nonexistent/dsvm-test-docker.sock") }, new NoGpus());

    public bool Down { get; set; }

    private IWorkspaceBackend Current => Down ? _missing : inner;

    public string Name => inner.Name;

    public Task<WorkspaceLaunch> StartAsync(WorkspaceStartRequest request, IProgress<WorkspaceProgress>? progress, CancellationToken ct) => Current.StartAsync(request, progress, ct);

    public Task StopAsync(WorkspaceHandle handle, CancellationToken ct) => Current.StopAsync(handle, ct);

    public Task<WorkspaceStatus> GetStatusAsync(WorkspaceHandle handle, CancellationToken ct) => inner.GetStatusAsync(handle, ct);

    public Task DeleteAsync(WorkspaceHandle handle, string homeVolume, bool keepHome, CancellationToken ct) => Current.DeleteAsync(handle, homeVolume, keepHome, ct);

    public Task<string> GetLogsAsync(WorkspaceHandle handle, int tailLines, CancellationToken ct) => Current.GetLogsAsync(handle, tailLines, ct);

    public IAsyncEnumerable<ManagedResource> ListManagedAsync(CancellationToken ct) => inner.ListManagedAsync(ct);

    public Task<bool> HomeExistsAsync(string homeVolume, CancellationToken ct) => inner.HomeExistsAsync(homeVolume, ct);

    public Task<HostCapacity> GetCapacityAsync(CancellationToken ct) => inner.GetCapacityAsync(ct);
}
