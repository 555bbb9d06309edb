using Dsvm.Core.Workspaces;

namespace Dsvm.Testing;

/// <summary>A store that forwards every call to <paramref name="inner"/>; tests override the calls they fake.</summary>
public class DelegatingWorkspaceStore(IWorkspaceStore inner) : IWorkspaceStore
{
    protected IWorkspaceStore Inner => inner;

    public virtual Task<Workspace?> FindAsync(string owner, string name, CancellationToken ct) => inner.FindAsync(owner, name, ct);

    public virtual Task<IReadOnlyList<Workspace>> ListAsync(string? owner, CancellationToken ct) => inner.ListAsync(owner, ct);

    public virtual Task<Workspace> SaveAsync(Workspace workspace, CancellationToken ct) => inner.SaveAsync(workspace, ct);

    public virtual Task DeleteAsync(Workspace workspace, CancellationToken ct) => inner.DeleteAsync(workspace, ct);

    public virtual Task<Home?> FindHomeAsync(string ownerId, string name, CancellationToken ct) => inner.FindHomeAsync(ownerId, name, ct);

    public virtual Task<Home?> GetHomeAsync(string homeId, CancellationToken ct) => inner.GetHomeAsync(homeId, ct);

    public virtual Task<IReadOnlyList<Home>> ListHomesAsync(string? ownerId, CancellationToken ct) => inner.ListHomesAsync(ownerId, ct);

    public virtual Task SaveHomeAsync(Home home, CancellationToken ct) => inner.SaveHomeAsync(home, ct);

    public virtual Task DeleteHomeAsync(string homeId, CancellationToken ct) => inner.DeleteHomeAsync(homeId, ct);
}
