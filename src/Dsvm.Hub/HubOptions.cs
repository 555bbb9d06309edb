namespace Dsvm.Hub;

/// <summary>Per-user limits; null means unlimited.</summary>
public sealed record Quota
{
    public int? MaxWorkspaces { get; init; } = 3;
    public double? MaxVcpus { get; init; } = 4;
    public int? MaxGpus { get; init; } = 1;
}

/// <summary>Hub settings (section <c>Hub</c>; environment overrides <c>DSVM__Hub__…</c>).</summary>
public sealed record HubOptions
{
    /// <summary>Where the hub listens. Loopback by default: put a TLS-terminating proxy in front for other machines.</summary>
    public string Listen { get; init; } = "http://127.0.0.1:8000";

    /// <summary>The first admin's password; when empty, one is generated and printed once on first start.</summary>
    public string? AdminPassword { get; init; }

    public string AdminName { get; init; } = "admin";

    /// <summary>
    /// Admins may open every user's workspace through the proxy. Off by default: workspaces share the hub's origin,
    /// so a user's own JavaScript in their workspace could act with the session of an admin who opens it.
    /// </summary>
    public bool AdminAccess { get; init; }

    public Quota DefaultQuota { get; init; } = new();

    /// <summary>Workspace starts in flight at once; more are answered 429 with Retry-After.</summary>
    public int MaxConcurrentStarts { get; init; } = 10;

    public TimeSpan IdleTimeout { get; init; } = TimeSpan.FromHours(1);

    public TimeSpan CullInterval { get; init; } = TimeSpan.FromMinutes(1);

    public TimeSpan ReconcileInterval { get; init; } = TimeSpan.FromMinutes(1);

    /// <summary>Lifetime of API tokens when the request names none.</summary>
    public TimeSpan DefaultTokenLifetime { get; init; } = TimeSpan.FromDays(30);

    /// <summary>Failed logins per user name within <see cref="LoginWindow"/> before further tries are refused.</summary>
    public int MaxFailedLogins { get; init; } = 5;

    public TimeSpan LoginWindow { get; init; } = TimeSpan.FromMinutes(5);
}
