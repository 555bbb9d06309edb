using Dsvm.Core.Sizes;

namespace Dsvm.Core.Workspaces;

/// <summary>What <c>dsvm doctor</c> and the hub's health page say about one backend.</summary>
public sealed record BackendHealth(bool Healthy, string Detail, HostCapacity? Capacity = null);

/// <summary>A backend that can describe its own health and capacity (engine reachable, nodes ready, ...).</summary>
public interface IDescribableBackend
{
    Task<BackendHealth> DescribeAsync(CancellationToken ct);
}

/// <summary>
/// The named backends one manager (the CLI or the hub) can run workspaces on, and the rule that picks one for a
/// new workspace: the backend asked for, else the one configured for its size, else for its size class, else the
/// default. A workspace stays on the backend it was created on (its home lives there): starts, stops and resizes
/// go to that backend whatever the routing says later. Backends are created on first use, so a configured but
/// unreachable cluster costs nothing until a workspace needs it.
/// </summary>
public sealed class WorkspaceBackends
{
    private readonly Dictionary<string, Lazy<IWorkspaceBackend>> _backends;
    private readonly IReadOnlyDictionary<string, string> _bySize;
    private readonly IReadOnlyDictionary<SizeClass, string> _byClass;

    public WorkspaceBackends(
        IReadOnlyDictionary<string, Func<IWorkspaceBackend>> factories,
        string defaultBackend,
        IReadOnlyDictionary<string, string>? bySize = null,
        IReadOnlyDictionary<SizeClass, string>? byClass = null)
    {
        if (factories.Count == 0)
        {
            throw new ArgumentException("at least one backend is needed", nameof(factories));
        }

        _backends = factories.ToDictionary(kv => kv.Key, kv => new Lazy<IWorkspaceBackend>(kv.Value, LazyThreadSafetyMode.PublicationOnly), StringComparer.Ordinal);
        _bySize = bySize ?? new Dictionary<string, string>();
        _byClass = byClass ?? new Dictionary<SizeClass, string>();
        foreach (var name in new[] { defaultBackend }.Concat(_bySize.Values).Concat(_byClass.Values))
        {
            if (!_backends.ContainsKey(name))
            {
                throw new UsageException($"backend '{name}' is routed to but not configured (configured: {string.Join(", ", Names)})");
            }
        }

        DefaultName = defaultBackend;
    }

    /// <summary>One backend, used for everything (tests, the plain local CLI).</summary>
    public static WorkspaceBackends Only(IWorkspaceBackend backend) =>
        new(new Dictionary<string, Func<IWorkspaceBackend>> { [backend.Name] = () => backend }, backend.Name);

    public string DefaultName { get; }

    public IWorkspaceBackend Default => Get(DefaultName);

    public IReadOnlyList<string> Names => [.. _backends.Keys.Order(StringComparer.Ordinal)];

    /// <summary>The backends created so far (a reconcile pass need not connect to clusters nobody used).</summary>
    public IEnumerable<IWorkspaceBackend> Created => _backends.Values.Where(l => l.IsValueCreated).Select(l => l.Value);

    public bool Contains(string name) => _backends.ContainsKey(name);

    public IWorkspaceBackend Get(string name) =>
        _backends.TryGetValue(name, out var lazy)
            ? lazy.Value
            : throw new UsageException($"unknown backend '{name}' (configured: {string.Join(", ", Names)}; see backends.yaml)");

    /// <summary>The backend's name for a new workspace of <paramref name="size"/>.</summary>
    public string Select(string? requested, MachineSize size)
    {
        if (requested is { Length: > 0 })
        {
            _ = Get(requested);
            return requested;
        }

        if (_bySize.TryGetValue(size.Name, out var bySize))
        {
            return bySize;
        }

        return _byClass.TryGetValue(size.Class, out var byClass) ? byClass : DefaultName;
    }

    /// <summary>Where each size goes when nothing is asked for (for <c>dsvm sizes</c> and the hub's size list).</summary>
    public string RouteOf(MachineSize size) => Select(null, size);
}
