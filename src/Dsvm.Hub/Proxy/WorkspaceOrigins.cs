using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text.RegularExpressions;
using Dsvm.Core;
using Dsvm.Core.Workspaces;
using Microsoft.AspNetCore.DataProtection;
using Microsoft.AspNetCore.Http;

namespace Dsvm.Hub.Proxy;

/// <summary>
/// Per-workspace origins (<see cref="HubOptions.WorkspaceDomain"/>): which host names are workspaces, the URL a
/// workspace is served at, the one-time codes the hub hands a workspace host, and that host's own cookie. The host
/// label is the workspace's ID (random, never a user's string), so two workspaces never share an origin and a
/// workspace made again under the same name gets a new one.
/// </summary>
public sealed partial class WorkspaceOrigins
{
    /// <summary>The workspace host's own cookie (host-only; <c>dsvm-…</c>, so it never reaches Jupyter).</summary>
    public const string CookieName = "dsvm-ws-session";

    /// <summary>The query parameter that carries the one-time code to the workspace host.</summary>
    public const string CodeParameter = "dsvm-code";

    /// <summary>How long a code may wait to be exchanged.</summary>
    public static readonly TimeSpan CodeLifetime = TimeSpan.FromMinutes(1);

    /// <summary>How long a workspace cookie lasts (the hub session's own lifetime); then the hub is asked again.</summary>
    public static readonly TimeSpan CookieLifetime = TimeSpan.FromHours(12);

    /// <summary>Codes waiting to be exchanged, at most (a flood of unexchanged codes cannot grow memory without end).</summary>
    private const int MaxCodes = 10_000;

    private readonly ConcurrentDictionary<string, (string WorkspaceId, WorkspaceSignIn SignIn, DateTimeOffset Expires)> _codes = new(StringComparer.Ordinal);
    private readonly TimeProvider _time;
    private readonly IDataProtector _protector;
    private readonly string? _suffix;

    public WorkspaceOrigins(HubOptions options, TimeProvider time, IDataProtectionProvider protection)
    {
        _time = time;
        _protector = protection.CreateProtector("opendsvm-workspace-cookie-v1");
        (_suffix, HubHost) = Parse(options);
    }

    /// <summary>On when <see cref="HubOptions.WorkspaceDomain"/> is set.</summary>
    public bool Enabled => _suffix is not null;

    /// <summary>The hub's own host name (without port).</summary>
    public string HubHost { get; }

    /// <summary>Checks the settings (at start): a clear error naming the key.</summary>
    public static (string? Suffix, string HubHost) Parse(HubOptions options)
    {
        var listenHost = Uri.TryCreate(options.Listen.Replace("://*", "://0.0.0.0", StringComparison.Ordinal).Replace("://+", "://0.0.0.0", StringComparison.Ordinal), UriKind.Absolute, out var listen)
            ? listen.Host : "localhost";
        var hubHost = (string.IsNullOrWhiteSpace(options.PublicHost) ? listenHost : options.PublicHost.Trim()).ToLowerInvariant();
        if (!string.IsNullOrWhiteSpace(options.PublicHost) && Uri.CheckHostName(hubHost) == UriHostNameType.Unknown)
        {
            throw new UsageException($"Hub:PublicHost: '{options.PublicHost}' is not a host name");
        }

        if (string.IsNullOrWhiteSpace(options.WorkspaceDomain))
        {
            return (null, hubHost);
        }

        var domain = options.WorkspaceDomain.ToLowerInvariant();
        if (!DomainPattern().IsMatch(domain))
        {
            throw new UsageException($"Hub:WorkspaceDomain: '{options.WorkspaceDomain}' must be a wildcard domain such as *.ws.example.org (or *.localhost)");
        }

        var suffix = domain[1..];
        if (hubHost.EndsWith(suffix, StringComparison.Ordinal))
        {
            throw new UsageException($"Hub:WorkspaceDomain: the hub's own host '{hubHost}' must not be inside {domain} (set Hub:PublicHost to the hub's host name)");
        }

        return (suffix, hubHost);
    }

    /// <summary>The workspace ID a request's Host names, when it is a workspace host.</summary>
    public bool TryGetWorkspaceHost(HostString host, out string workspaceId)
    {
        workspaceId = "";
        if (_suffix is null || !host.HasValue)
        {
            return false;
        }

        var name = host.Host.ToLowerInvariant();
        if (!name.EndsWith(_suffix, StringComparison.Ordinal))
        {
            return false;
        }

        workspaceId = name[..^_suffix.Length];
        return true;
    }

    /// <summary>Where a workspace's pages are: on its own host in origins mode, else under the hub's origin (relative).</summary>
    public string UrlFor(Workspace w, HttpRequest hubRequest)
    {
        var path = $"/user/{w.Owner}/{w.Name}/lab";
        return _suffix is null ? path : WorkspaceOrigin(w.Id, hubRequest) + path;
    }

    /// <summary>scheme://ID.domain[:port], with the scheme and port the browser used for the hub.</summary>
    public string WorkspaceOrigin(string workspaceId, HttpRequest hubRequest) =>
        $"{hubRequest.Scheme}://{workspaceId}{_suffix}{Port(hubRequest)}";

    /// <summary>scheme://hub-host[:port], with the scheme and port the browser used for the workspace host.</summary>
    public string HubOrigin(HttpRequest workspaceRequest) => $"{workspaceRequest.Scheme}://{HubHost}{Port(workspaceRequest)}";

    private static string Port(HttpRequest r) => r.Host.Port is { } p ? ":" + p : "";

    /// <summary>A short-lived, single-use code that lets one user (of one hub session) in to one workspace host.</summary>
    public string IssueCode(string workspaceId, WorkspaceSignIn signIn)
    {
        var now = _time.GetUtcNow();
        if (_codes.Count >= MaxCodes)
        {
            foreach (var (key, value) in _codes)
            {
                if (value.Expires <= now)
                {
                    _codes.TryRemove(key, out _);
                }
            }

            if (_codes.Count >= MaxCodes)
            {
                throw new TooManyRequestsException("too many workspace sign-ins in flight; try again in a minute", CodeLifetime);
            }
        }

        var code = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(32));
        _codes[code] = (workspaceId, signIn, now + CodeLifetime);
        return code;
    }

    /// <summary>Exchanges a code (once) on the workspace host it was made for; the sign-in it was issued for.</summary>
    public WorkspaceSignIn? Redeem(string code, string workspaceId)
    {
        if (!_codes.TryRemove(code, out var entry))
        {
            return null;
        }

        return entry.WorkspaceId == workspaceId && entry.Expires > _time.GetUtcNow() ? entry.SignIn : null;
    }

    /// <summary>The workspace host's cookie value: bound to that workspace, user and hub session, with an expiry.</summary>
    public string ProtectCookie(string workspaceId, WorkspaceSignIn signIn) =>
        _protector.Protect($"{workspaceId}\n{signIn.UserId}\n{signIn.UserName}\n{signIn.SessionId}\n{(_time.GetUtcNow() + CookieLifetime).ToUnixTimeSeconds()}");

    /// <summary>The sign-in a workspace cookie holds, when it is valid for this workspace now.</summary>
    public WorkspaceSignIn? UnprotectCookie(string? value, string workspaceId)
    {
        if (string.IsNullOrEmpty(value))
        {
            return null;
        }

        string plain;
        try
        {
            plain = _protector.Unprotect(value);
        }
        catch (CryptographicException)
        {
            return null;
        }

        var parts = plain.Split('\n');
        return parts.Length == 5 && parts[0] == workspaceId && long.TryParse(parts[4], out var expires)
               && DateTimeOffset.FromUnixTimeSeconds(expires) > _time.GetUtcNow()
            ? new WorkspaceSignIn(parts[1], parts[2], parts[3])
            : null;
    }

    [GeneratedRegex(@"^\*(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)+\z")]
    private static partial Regex DomainPattern();
}

/// <summary>Who a workspace host lets in: a hub user, and the hub session (empty for an API token) whose end ends it too.</summary>
public sealed record WorkspaceSignIn(string UserId, string UserName, string SessionId);
