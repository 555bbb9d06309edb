namespace Dsvm.Hub;

/// <summary>
/// Section <c>Hub:Registry</c>: an OCI registry whose <c>dsvm/NAME</c> repositories are the hub's environments
/// (pushed with <c>dsvm env push</c>); off while <see cref="Url"/> is empty. Put the password in the environment
/// (<c>DSVM__Hub__Registry__Password</c>) or a file readable by the hub only; it is never logged.
/// </summary>
public sealed record HubRegistryOptions
{
    /// <summary><c>host:port</c> or a domain name, optionally with <c>http://</c> / <c>https://</c> (bare: HTTPS, except on loopback).</summary>
    public string? Url { get; init; }

    /// <summary>
    /// <c>host[:port]</c> the workspaces' engines pull from, when it is not <see cref="Url"/>'s host: a registry the hub
    /// reaches at one address and the nodes' container runtime at another (a kind or minikube local registry, which
    /// the nodes see as <c>localhost:5001</c>; a lab whose engine trusts only a loopback registry without TLS). The
    /// catalog then offers <c>PULLADDRESS/dsvm/NAME@sha256:…</c>. Absent: <see cref="Url"/>'s host.
    /// </summary>
    public string? PullAddress { get; init; }

    public string? Username { get; init; }

    public string? Password { get; init; }

    /// <summary>How long a listing is reused before the registry is asked again.</summary>
    public TimeSpan CacheFor { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Bound on each registry request.</summary>
    public TimeSpan Timeout { get; init; } = TimeSpan.FromSeconds(15);

    public bool Enabled => !string.IsNullOrWhiteSpace(Url);

    public override string ToString() => $"HubRegistryOptions {{ Url = {Url}, PullAddress = {PullAddress}, Username = {Username}, Password = {(Password is null ? "" : "***")} }}";
}
