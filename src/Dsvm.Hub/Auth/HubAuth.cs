using System.Collections.Concurrent;
using System.Security.Claims;
using System.Text.Encodings.Web;
using Dsvm.Core;
using Dsvm.Hub.Data;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Authentication.Cookies;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Dsvm.Hub.Auth;

public static class HubClaims
{
    public const string Scope = "dsvm:scope";
    public const string UserId = "dsvm:uid";
    public const string AdminRole = "admin";
    public const string TokenScheme = "dsvm-token";
    public const string CookieScheme = "dsvm-cookie";
    public const string Scheme = "dsvm";
    public const string CookieName = "dsvm-session";
    public const string CsrfCookie = "dsvm-csrf";
    public const string CsrfHeader = "X-Dsvm-Csrf";

    public static ClaimsPrincipal Principal(HubUser user, IEnumerable<string> scopes, string scheme)
    {
        var claims = new List<Claim> { new(ClaimTypes.Name, user.Name), new(UserId, user.Id) };
        if (user.IsAdmin)
        {
            claims.Add(new Claim(ClaimTypes.Role, AdminRole));
        }

        claims.AddRange(scopes.Distinct().Select(s => new Claim(Scope, s)));
        return new ClaimsPrincipal(new ClaimsIdentity(claims, scheme));
    }

    /// <summary>All scopes a browser session of this user has.</summary>
    public static IEnumerable<string> SessionScopes(HubUser user) =>
        user.IsAdmin ? Scopes.All : [Scopes.Read, Scopes.Workspaces];

    public static bool Has(this ClaimsPrincipal p, string scope) => p.HasClaim(Scope, scope);

    public static string Name(this ClaimsPrincipal p) => p.Identity?.Name ?? "";

    public static bool IsAdmin(this ClaimsPrincipal p) => p.IsInRole(AdminRole) && p.Has(Scopes.Admin);

    /// <summary>
    /// A session lasts only as long as its user: deleted (or deleted and made again under the same name) ends it,
    /// as it does the user's tokens. Checked on every request, like tokens are.
    /// </summary>
    public static async Task ValidateSessionAsync(CookieValidatePrincipalContext context)
    {
        var p = context.Principal;
        var user = p?.Identity?.Name is { } name
            ? await context.HttpContext.RequestServices.GetRequiredService<Accounts>().FindUserCachedAsync(name, context.HttpContext.RequestAborted)
            : null;
        if (user is null || user.Id != p!.FindFirst(UserId)?.Value || user.IsAdmin != p.IsInRole(AdminRole))
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
    protected override async Task<AuthenticateResult> HandleAuthenticateAsync()
    {
        var header = Request.Headers.Authorization.ToString();
        string? secret = null;
        foreach (var prefix in new[] { "token ", "Bearer " })
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

/// <summary>Counts failed logins per user name; too many within the window are refused (429) until it slides by.</summary>
public sealed class LoginThrottle(HubOptions options, TimeProvider time)
{
    private readonly ConcurrentDictionary<string, Queue<DateTimeOffset>> _failures = new(StringComparer.Ordinal);

    public void ThrowIfBlocked(string name)
    {
        if (!_failures.TryGetValue(name, out var q))
        {
            return;
        }

        lock (q)
        {
            var now = time.GetUtcNow();
            while (q.Count > 0 && now - q.Peek() > options.LoginWindow)
            {
                q.Dequeue();
            }

            if (q.Count >= options.MaxFailedLogins)
            {
                var retry = options.LoginWindow - (now - q.Peek());
                throw new TooManyRequestsException($"too many failed logins for '{name}'; try again in {Math.Ceiling(retry.TotalSeconds):0} s", retry);
            }
        }
    }

    public void Failed(string name)
    {
        var q = _failures.GetOrAdd(name, _ => new Queue<DateTimeOffset>());
        lock (q)
        {
            q.Enqueue(time.GetUtcNow());
        }
    }

    public void Succeeded(string name) => _failures.TryRemove(name, out _);
}
