namespace Dsvm.Hub;

/// <summary>Per-user limits; null means unlimited.</summary>
public sealed record Quota
{
    public int? MaxWorkspaces { get; init; } = 3;
    public double? MaxVcpus { get; init; } = 4;
    public int? MaxGpus { get; init; } = 1;
}

/// <summary>
/// Optional OpenID Connect login (section <c>Hub:Oidc</c>), on when <see cref="Authority"/> is set. After the code
/// flow the identity is mapped to a local hub user, who then gets the hub's own session cookie.
/// </summary>
public sealed record OidcOptions
{
    /// <summary>The provider's issuer URL, e.g. <c>https://keycloak.example.org/realms/dsvm</c> or <c>https://dex.example.org</c>.</summary>
    public string? Authority { get; init; }

    public string ClientId { get; init; } = "";

    public string? ClientSecret { get; init; }

    /// <summary>Scopes asked for; empty means <see cref="DefaultScopes"/> (configuration binding appends to a non-empty default).</summary>
    public IReadOnlyList<string> Scopes { get; init; } = [];

    public static readonly IReadOnlyList<string> DefaultScopes = ["openid", "profile", "email"];

    /// <summary>The id_token claim that gives the hub user name (normalised to the hub's rules).</summary>
    public string UserNameClaim { get; init; } = "preferred_username";

    /// <summary>With <see cref="AdminClaimValue"/>: users whose token carries this claim with that value are admins (checked at every login).</summary>
    public string? AdminClaim { get; init; }

    public string? AdminClaimValue { get; init; }

    /// <summary>Unknown identities get a hub account on their first login; otherwise an admin must create it first.</summary>
    public bool AutoCreateUsers { get; init; } = true;

    /// <summary>The quota of users created on first login; null fields are unlimited. Not set: the hub's default quota.</summary>
    public Quota? DefaultQuota { get; init; }

    /// <summary>
    /// A first login whose name matches an existing local account that is linked to no identity links it. Off by
    /// default: otherwise whoever can choose their user name at the provider could take over a local account.
    /// </summary>
    public bool LinkExistingUsers { get; init; }

    /// <summary>Only admins may log in with a password (everyone else uses the provider).</summary>
    public bool PasswordLoginForAdminsOnly { get; init; }

    /// <summary>The login page's button says "Log in with LABEL".</summary>
    public string ButtonLabel { get; init; } = "single sign-on";

    /// <summary>The provider's metadata must come over https. May be turned off only for a loopback authority (tests, development).</summary>
    public bool RequireHttpsMetadata { get; init; } = true;

    public string CallbackPath { get; init; } = "/hub/oidc/callback";

    public bool Enabled => !string.IsNullOrWhiteSpace(Authority);
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

    /// <summary>
    /// Per-workspace origins: a wildcard such as <c>*.ws.example.org</c>. Each workspace is then served from
    /// <c>WORKSPACE-ID.ws.example.org</c> (its own browser origin, which the hub's session cookie never reaches) and gets its
    /// own host-only cookie through a one-time code from the hub. Not set: every workspace shares the hub's origin
    /// (single-origin mode, for a laptop; a warning is logged at start).
    /// </summary>
    public string? WorkspaceDomain { get; init; }

    /// <summary>The host name browsers reach the hub by (e.g. <c>hub.example.org</c>); the default is <see cref="Listen"/>'s host.</summary>
    public string? PublicHost { get; init; }

    /// <summary>Log a line per request (ASP.NET Core's hosting and routing, YARP) at Information. Off by default.</summary>
    public bool RequestLogging { get; init; }

    public Quota DefaultQuota { get; init; } = new();

    /// <summary>OpenID Connect login; off unless <c>Oidc:Authority</c> is set.</summary>
    public OidcOptions Oidc { get; init; } = new();

    /// <summary>Environments from an OCI registry (pulled by digest); off unless <c>Registry:Url</c> is set.</summary>
    public HubRegistryOptions Registry { get; init; } = new();

    /// <summary>Workspace starts in flight at once; more are answered 429 with Retry-After.</summary>
    public int MaxConcurrentStarts { get; init; } = 10;

    public TimeSpan IdleTimeout { get; init; } = TimeSpan.FromHours(1);

    public TimeSpan CullInterval { get; init; } = TimeSpan.FromMinutes(1);

    public TimeSpan ReconcileInterval { get; init; } = TimeSpan.FromMinutes(1);

    /// <summary>Lifetime of API tokens when the request names none.</summary>
    public TimeSpan DefaultTokenLifetime { get; init; } = TimeSpan.FromDays(30);

    /// <summary>Failed logins per (user name, client address) within <see cref="LoginWindow"/> before further tries are refused.</summary>
    public int MaxFailedLogins { get; init; } = 5;

    /// <summary>Failed logins per client address (any user names) within <see cref="LoginWindow"/>.</summary>
    public int MaxFailedLoginsPerAddress { get; init; } = 50;

    /// <summary>
    /// Addresses of reverse proxies whose <c>X-Forwarded-For</c> / <c>X-Forwarded-Proto</c> headers are believed (the
    /// client address for login throttling, https for cookies and OpenID Connect redirects). Empty: none.
    /// </summary>
    public IReadOnlyList<string> TrustedProxies { get; init; } = [];

    public TimeSpan LoginWindow { get; init; } = TimeSpan.FromMinutes(5);

    /// <summary><c>POST …/exec</c>: the timeout when the request names none, and the most it may name.</summary>
    public TimeSpan ExecDefaultTimeout { get; init; } = TimeSpan.FromMinutes(1);

    public TimeSpan ExecMaxTimeout { get; init; } = TimeSpan.FromMinutes(10);

    /// <summary>Bytes of stdout and of stderr each that an exec answer carries; the rest is dropped (truncated: true).</summary>
    public int ExecOutputLimitBytes { get; init; } = 1024 * 1024;
}
