using Dsvm.Core.Sizes;
using Dsvm.Core.Workspaces;

namespace Dsvm.Testing;

/// <summary>A backend that forwards every call to <paramref name="inner"/>; tests override the calls they fake.</summary>
public class DelegatingWorkspaceBackend(IWorkspaceBackend inner) : IWorkspaceBackend
{
    protected IWorkspaceBackend Inner => inner;

    public string Name => inner.Name;

    public bool RunsOnThisHost => inner.RunsOnThisHost;

    public TimeSpan? MinimumStartTimeout => inner.MinimumStartTimeout;

    public virtual Task<WorkspaceLaunch> StartAsync(WorkspaceStartRequest request, IProgress<WorkspaceProgress>? progress, CancellationToken ct) =>
        inner.StartAsync(request, progress, ct);

    public virtual Task StopAsync(WorkspaceHandle handle, CancellationToken ct) => inner.StopAsync(handle, ct);

    public virtual Task<WorkspaceStatus> GetStatusAsync(WorkspaceHandle handle, CancellationToken ct) => inner.GetStatusAsync(handle, ct);

    public virtual Task DeleteAsync(WorkspaceHandle handle, string homeVolume, bool keepHome, CancellationToken ct) =>
        inner.DeleteAsync(handle, homeVolume, keepHome, ct);

    public virtual Task<string> GetLogsAsync(WorkspaceHandle handle, int tailLines, CancellationToken ct) => inner.GetLogsAsync(handle, tailLines, ct);

    public virtual IAsyncEnumerable<ManagedResource> ListManagedAsync(CancellationToken ct) => inner.ListManagedAsync(ct);

    public virtual Task<bool> HomeExistsAsync(string homeVolume, CancellationToken ct) => inner.HomeExistsAsync(homeVolume, ct);

    public virtual Task DeleteHomeAsync(string homeVolume, CancellationToken ct) => inner.DeleteHomeAsync(homeVolume, ct);

    public virtual Task<HostCapacity> GetCapacityAsync(CancellationToken ct) => inner.GetCapacityAsync(ct);
}
