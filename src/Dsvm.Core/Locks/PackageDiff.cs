namespace Dsvm.Core.Locks;

/// <summary>One package whose version differs between two package sets.</summary>
public sealed record VersionChange(string Name, string From, string To);

/// <summary>
/// What changed between two package sets (two locks, or the packages of two images): added, removed, upgraded and
/// downgraded, by Debian version order (<see cref="DebianVersion"/>). Each list is sorted by name.
/// </summary>
public sealed record PackageDiff
{
    public required IReadOnlyList<LockedPackage> Added { get; init; }
    public required IReadOnlyList<LockedPackage> Removed { get; init; }
    public required IReadOnlyList<VersionChange> Upgraded { get; init; }
    public required IReadOnlyList<VersionChange> Downgraded { get; init; }

    /// <summary>Packages whose version string differs but that dpkg orders as equal (e.g. "1.0" and "1.0-0").</summary>
    public IReadOnlyList<VersionChange> Respelled { get; init; } = [];

    public int Unchanged { get; init; }

    public bool IsEmpty => Added.Count == 0 && Removed.Count == 0 && Upgraded.Count == 0 && Downgraded.Count == 0 && Respelled.Count == 0;

    /// <summary>"+3 −1 ~12": added, removed, version changed (up, down or respelled).</summary>
    public string Counts => $"+{Added.Count} −{Removed.Count} ~{Upgraded.Count + Downgraded.Count + Respelled.Count}";

    public static PackageDiff Compute(IEnumerable<LockedPackage> from, IEnumerable<LockedPackage> to)
    {
        var a = ByName(from);
        var b = ByName(to);
        var upgraded = new List<VersionChange>();
        var downgraded = new List<VersionChange>();
        var respelled = new List<VersionChange>();
        var unchanged = 0;
        foreach (var (name, version) in a)
        {
            if (!b.TryGetValue(name, out var other))
            {
                continue;
            }

            if (version == other)
            {
                unchanged++;
                continue;
            }

            var c = DebianVersion.Compare(version, other);
            (c < 0 ? upgraded : c > 0 ? downgraded : respelled).Add(new VersionChange(name, version, other));
        }

        return new PackageDiff
        {
            Added = b.Where(p => !a.ContainsKey(p.Key)).Select(p => new LockedPackage(p.Key, p.Value)).ToList(),
            Removed = a.Where(p => !b.ContainsKey(p.Key)).Select(p => new LockedPackage(p.Key, p.Value)).ToList(),
            Upgraded = upgraded,
            Downgraded = downgraded,
            Respelled = respelled,
            Unchanged = unchanged,
        };
    }

    /// <summary>The packages of two locks: everything each finished image holds (<see cref="EnvironmentLock.AllPackages"/>).</summary>
    public static PackageDiff Compute(EnvironmentLock from, EnvironmentLock to) => Compute(from.AllPackages, to.AllPackages);

    /// <summary>
    /// The one line <c>env lock</c> and <c>env build</c> print when a lock changes: "lock changed: +3 −1 ~12" (or
    /// "new lock: …" when there was none); null when the lock is the same.
    /// </summary>
    public static string? ChangeLine(EnvironmentLock? before, EnvironmentLock after)
    {
        ArgumentNullException.ThrowIfNull(after);
        if (before is not null && before.Digest == after.Digest)
        {
            return null;
        }

        var d = Compute(before?.AllPackages ?? [], after.AllPackages);
        return before is null ? $"new lock: {d.Counts}" : $"lock changed: {d.Counts}" + (d.IsEmpty ? " (same packages; the spec or base changed)" : "");
    }

    private static SortedDictionary<string, string> ByName(IEnumerable<LockedPackage> packages)
    {
        var map = new SortedDictionary<string, string>(StringComparer.Ordinal);
        foreach (var p in packages)
        {
            map[p.Name] = p.Version;
        }

        return map;
    }
}
