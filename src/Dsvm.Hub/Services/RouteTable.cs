using System.Collections.Concurrent;
using Dsvm.Core.Workspaces;

namespace Dsvm.Hub.Services;

/// <summary>Where the proxy sends <c>/user/OWNER/NAME/…</c>, and the token it injects.</summary>
public sealed record WorkspaceRoute(string Owner, string Name, Uri Endpoint, string Token, string Id)
{
    /// <summary>Where the proxy sends requests (scheme, host, port), computed once per route rather than per request.</summary>
    public string Destination { get; } = Endpoint.GetLeftPart(UriPartial.Authority);

    /// <summary>The workspace's base URL, <c>/user/OWNER/NAME/</c>.</summary>
    public string Prefix { get; } = $"/user/{Owner}/{Name}/";

    /// <summary>The Authorization header the proxy injects.</summary>
    public string Authorization { get; } = $"token {Token}";
}

/// <summary>
/// The proxy's routes. The store is the source of truth: a miss is loaded from it, so a restarted hub routes to
/// workspaces that kept running. Entries follow every record the manager publishes (<see cref="WorkspaceNotifications"/>:
/// replaced when a workspace runs, dropped when it stops, starts again or goes, before the manager's call returns);
/// changes made by other processes are read from the store by the reconcile loop.
/// </summary>
public sealed class RouteTable : IDisposable
{
    private readonly ConcurrentDictionary<(string, string), WorkspaceRoute?> _routes = new();
    private readonly IWorkspaceStore _store;
    private readonly IDisposable _subscription;

    public RouteTable(IWorkspaceStore store, WorkspaceNotifications notifications)
    {
        _store = store;
        _subscription = notifications.Subscribe(c =>
        {
            if (c.Record is { } w)
            {
                Update(w);
            }
            else if (c.Deleted)
            {
                Remove(c.Owner, c.Name);
            }
        });
    }

    public void Dispose() => _subscription.Dispose();

    public async ValueTask<WorkspaceRoute?> FindAsync(string owner, string name, CancellationToken ct)
    {
        if (_routes.TryGetValue((owner, name), out var cached))
        {
            return cached;
        }

        var w = await _store.FindAsync(owner, name, ct);
        var route = ToRoute(w);
        // Only running workspaces are cached; misses are not, so a start elsewhere is seen at once.
        if (route is not null)
        {
            _routes[(owner, name)] = route;
        }

        return route;
    }

    public void Update(Workspace w)
    {
        if (ToRoute(w) is { } route)
        {
            _routes[(w.Owner, w.Name)] = route;
        }
        else
        {
            _routes.TryRemove((w.Owner, w.Name), out _);
        }
    }

    public void Remove(string owner, string name) => _routes.TryRemove((owner, name), out _);

    public int Count => _routes.Count;

    private static WorkspaceRoute? ToRoute(Workspace? w) =>
        w is { State: WorkspaceState.Running, Endpoint: { } e } ? new WorkspaceRoute(w.Owner, w.Name, new Uri(e), w.Token, w.Id) : null;
}
