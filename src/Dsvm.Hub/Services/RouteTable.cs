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
/// workspaces that kept running. Entries are replaced on every state change the hub makes and dropped when a
/// workspace stops; reconciliation refreshes them too.
/// </summary>
public sealed class RouteTable(IWorkspaceStore store)
{
    private readonly ConcurrentDictionary<(string, string), WorkspaceRoute?> _routes = new();

    public async ValueTask<WorkspaceRoute?> FindAsync(string owner, string name, CancellationToken ct)
    {
        if (_routes.TryGetValue((owner, name), out var cached))
        {
            return cached;
        }

        var w = await store.FindAsync(owner, name, ct);
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
