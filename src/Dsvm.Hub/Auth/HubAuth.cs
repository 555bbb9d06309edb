using System.Collections.Concurrent;
using System.Security.Claims;
using System.Text.Encodings.Web;
using Dsvm.Core;
using Dsvm.Hub.Data;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Authentication.Cookies;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Dsvm.Hub.Auth;

public static class HubClaims
{
    public const string Scope = "dsvm:scope";
    public const string UserId = "dsvm:uid";

    /// <summary>The server-side session a session cookie belongs to (see <see cref="Accounts.CreateSessionAsync"/>).</summary>
    public const string SessionId = "dsvm:sid";
    public const string AdminRole = "admin";
    public const string TokenScheme = "dsvm-token";
    public const string CookieScheme = "dsvm-cookie";
    public const string Scheme = "dsvm";
    public const string CookieName = "dsvm-session";
    public const string CsrfCookie = "dsvm-csrf";
    public const string CsrfHeader = "X-Dsvm-Csrf";

    /// <summary>The session's CSRF secret: a claim inside the (encrypted, HttpOnly) session cookie.</summary>
    public const string CsrfClaim = "dsvm:csrf";

    public static ClaimsPrincipal Principal(HubUser user, IEnumerable<string> scopes, string scheme, string? sessionId = null)
    {
        var claims = new List<Claim> { new(ClaimTypes.Name, user.Name), new(UserId, user.Id) };
        if (sessionId is not null)
        {
            claims.Add(new Claim(SessionId, sessionId));
        }

        if (user.IsAdmin)
        {
            claims.Add(new Claim(ClaimTypes.Role, AdminRole));
        }

        claims.AddRange(scopes.Distinct().Select(s => new Claim(Scope, s)));
        return new ClaimsPrincipal(new ClaimsIdentity(claims, scheme));
    }

    /// <summary>A new server-side session for this user and the principal its cookie carries.</summary>
    public static async Task<ClaimsPrincipal> SessionPrincipalAsync(HubUser user, Accounts accounts, CancellationToken ct) =>
        Principal(user, SessionScopes(user), CookieScheme, await accounts.CreateSessionAsync(user, ct));

    /// <summary>The session id of a cookie-authenticated principal, or null.</summary>
    public static string? Session(this ClaimsPrincipal p) =>
        p.Identity?.AuthenticationType == CookieScheme ? p.FindFirst(SessionId)?.Value : null;

    /// <summary>All scopes a browser session of this user has.</summary>
    public static IEnumerable<string> SessionScopes(HubUser user) =>
        user.IsAdmin ? Scopes.All : [Scopes.Read, Scopes.Workspaces];

    /// <summary>
    /// Every new session gets its own CSRF secret, kept in the session ticket, so it is bound to that session: a cookie
    /// set by someone else (another subdomain, a workspace) cannot stand in for it. The web UI reads it from
    /// <c>/hub/csrf</c>; a copy goes into the HttpOnly <see cref="CsrfCookie"/> for non-browser clients of the login API.
    /// </summary>
    public static Task AddCsrfSecretAsync(CookieSigningInContext context)
    {
        if (context.Principal?.Identity is ClaimsIdentity identity)
        {
            foreach (var old in identity.FindAll(CsrfClaim).ToList())
            {
                identity.RemoveClaim(old);
            }

            var secret = Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(16));
            identity.AddClaim(new Claim(CsrfClaim, secret));
            context.HttpContext.Response.Cookies.Append(CsrfCookie, secret, new CookieOptions
            {
                HttpOnly = true, SameSite = SameSiteMode.Strict, Secure = context.HttpContext.Request.IsHttps, Path = "/",
            });
        }

        return Task.CompletedTask;
    }

    /// <summary>Whether a value (header or query) is this session's CSRF secret.</summary>
    public static bool IsCsrfSecret(this ClaimsPrincipal p, string? value) =>
        p.FindFirst(CsrfClaim)?.Value is { Length: > 0 } secret && !string.IsNullOrEmpty(value)
        && System.Security.Cryptography.CryptographicOperations.FixedTimeEquals(
            System.Text.Encoding.UTF8.GetBytes(secret), System.Text.Encoding.UTF8.GetBytes(value));

    public static bool Has(this ClaimsPrincipal p, string scope) => p.HasClaim(Scope, scope);

    public static string Name(this ClaimsPrincipal p) => p.Identity?.Name ?? "";

    public static bool IsAdmin(this ClaimsPrincipal p) => p.IsInRole(AdminRole) && p.Has(Scopes.Admin);

    /// <summary>
    /// A session lasts only as long as its server-side record and its user: logout, a password change and deleting
    /// the user (or deleting and making it again under the same name) end it, as they do the user's tokens. Checked on
    /// every request, through the same short cache as tokens.
    /// </summary>
    public static async Task ValidateSessionAsync(CookieValidatePrincipalContext context)
    {
        var p = context.Principal;
        var accounts = context.HttpContext.RequestServices.GetRequiredService<Accounts>();
        var user = p?.Identity?.Name is { } name && p.FindFirst(UserId)?.Value is { } id && p.FindFirst(SessionId)?.Value is { } session
            ? await accounts.SignedInUserAsync(name, id, session, context.HttpContext.RequestAborted)
            : null;
        if (user is null || user.IsAdmin != p!.IsInRole(AdminRole))
        {
            context.RejectPrincipal();
            await context.HttpContext.SignOutAsync(CookieScheme);
        }
    }
}

/// <summary><c>Authorization: token dsvm_…</c> (or <c>Bearer</c>): the hub's API tokens.</summary>
public sealed class TokenAuthenticationHandler(
    IOptionsMonitor<AuthenticationSchemeOptions> options, ILoggerFactory logger, UrlEncoder encoder, Accounts accounts)
    : AuthenticationHandler<AuthenticationSchemeOptions>(options, logger, encoder)
{
    private static readonly string[] Prefixes = ["token ", "Bearer "];

    protected override async Task<AuthenticateResult> HandleAuthenticateAsync()
    {
        var header = Request.Headers.Authorization.ToString();
        string? secret = null;
        foreach (var prefix in Prefixes)
        {
            if (header.StartsWith(prefix, StringComparison.OrdinalIgnoreCase))
            {
                secret = header[prefix.Length..].Trim();
            }
        }

        if (secret is null)
        {
            return AuthenticateResult.NoResult();
        }

        var result = await accounts.ValidateTokenAsync(secret, Context.RequestAborted);
        return result is { } r
            ? AuthenticateResult.Success(new AuthenticationTicket(HubClaims.Principal(r.User, r.Scopes, HubClaims.TokenScheme), HubClaims.TokenScheme))
            : AuthenticateResult.Fail("invalid or expired token");
    }
}

/// <summary>
/// Counts failed logins per (user name, client address) and per client address. Too many within the window are
/// refused (429 + Retry-After) until it slides by. Failures from one address never block the same user logging in
/// from another, so nobody can lock a user out by guessing wrong on purpose; the looser per-address limit stops one
/// address from spraying guesses over many names. IPv6 clients are counted per /64 (what one host usually gets).
/// </summary>
public sealed class LoginThrottle(HubOptions options, TimeProvider time)
{
    /// <summary>Above this many tracked keys, expired ones are swept (bounds memory under name spraying).</summary>
    private const int SweepAbove = 10_000;

    private readonly ConcurrentDictionary<string, Queue<DateTimeOffset>> _byUser = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, Queue<DateTimeOffset>> _byAddress = new(StringComparer.Ordinal);

    /// <summary>The key a client address is counted under: the address itself, or its /64 for IPv6.</summary>
    public static string AddressKey(System.Net.IPAddress? address)
    {
        if (address is null)
        {
            return "unknown";
        }

        if (address.IsIPv4MappedToIPv6)
        {
            address = address.MapToIPv4();
        }

        if (address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6)
        {
            var bytes = address.GetAddressBytes();
            Array.Clear(bytes, 8, 8);
            return new System.Net.IPAddress(bytes) + "/64";
        }

        return address.ToString();
    }

    public void ThrowIfBlocked(string name, System.Net.IPAddress? client)
    {
        var address = AddressKey(client);
        Check(_byAddress, address, options.MaxFailedLoginsPerAddress, "too many failed logins from this address");
        Check(_byUser, UserKey(name, address), options.MaxFailedLogins, $"too many failed logins for '{name}' from this address");
    }

    public void Failed(string name, System.Net.IPAddress? client)
    {
        var address = AddressKey(client);
        Add(_byAddress, address);
        Add(_byUser, UserKey(name, address));
    }

    /// <summary>A success clears the user's count at this address only (the address's own count keeps sliding).</summary>
    public void Succeeded(string name, System.Net.IPAddress? client) => _byUser.TryRemove(UserKey(name, AddressKey(client)), out _);

    private static string UserKey(string name, string address) => name + "\n" + address;

    private void Check(ConcurrentDictionary<string, Queue<DateTimeOffset>> map, string key, int max, string message)
    {
        if (!map.TryGetValue(key, out var q))
        {
            return;
        }

        lock (q)
        {
            var now = time.GetUtcNow();
            Expire(q, now);
            if (q.Count >= max)
            {
                var retry = options.LoginWindow - (now - q.Peek());
                throw new TooManyRequestsException($"{message}; try again in {Math.Ceiling(retry.TotalSeconds):0} s", retry);
            }
        }
    }

    private void Add(ConcurrentDictionary<string, Queue<DateTimeOffset>> map, string key)
    {
        if (map.Count > SweepAbove)
        {
            Sweep(map);
        }

        var q = map.GetOrAdd(key, _ => new Queue<DateTimeOffset>());
        lock (q)
        {
            q.Enqueue(time.GetUtcNow());
        }
    }

    private void Expire(Queue<DateTimeOffset> q, DateTimeOffset now)
    {
        while (q.Count > 0 && now - q.Peek() > options.LoginWindow)
        {
            q.Dequeue();
        }
    }

    private void Sweep(ConcurrentDictionary<string, Queue<DateTimeOffset>> map)
    {
        var now = time.GetUtcNow();
        foreach (var (key, q) in map)
        {
            lock (q)
            {
                Expire(q, now);
                if (q.Count == 0)
                {
                    map.TryRemove(key, out _);
                }
            }
        }
    }
}
