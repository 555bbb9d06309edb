using System.Net;
using System.Security.Claims;
using System.Text;
using Dsvm.Core;
using Dsvm.Hub.Api;
using Dsvm.Hub.Data;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Authentication.OpenIdConnect;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.IdentityModel.Protocols.OpenIdConnect;

namespace Dsvm.Hub.Auth;

/// <summary>
/// OpenID Connect login (authorization code flow with PKCE). The provider's identity never becomes a session by
/// itself: once the id_token is validated (signature, issuer, audience, lifetime, nonce; state by the correlation
/// cookie) it is mapped to a local hub user, and that user gets the very session cookie a password login gives.
/// </summary>
public static partial class OidcLogin
{
    public const string Scheme = "oidc";
    public const string LoginPath = "/hub/login/oidc";

    /// <summary>An identity that cannot become a hub user: the message is shown on the refusal page.</summary>
    public sealed class RefusedException(string message) : DsvmException(message)
    {
        public override string Kind => "login-refused";
    }

    public static void Register(AuthenticationBuilder auth, HubOptions options)
    {
        var o = options.Oidc;
        if (!o.Enabled)
        {
            return;
        }

        Validate(o);
        auth.AddOpenIdConnect(Scheme, oidc =>
        {
            oidc.Authority = o.Authority;
            oidc.ClientId = o.ClientId;
            oidc.ClientSecret = o.ClientSecret;
            oidc.ResponseType = OpenIdConnectResponseType.Code;
            // A top-level GET back to the hub: the correlation and nonce cookies can then be SameSite=Lax (form_post
            // would need SameSite=None, which browsers refuse without https).
            oidc.ResponseMode = OpenIdConnectResponseMode.Query;
            oidc.UsePkce = true;
            oidc.CallbackPath = o.CallbackPath;
            oidc.SignInScheme = HubClaims.CookieScheme;
            oidc.RequireHttpsMetadata = o.RequireHttpsMetadata;
            oidc.MapInboundClaims = false;
            oidc.SaveTokens = false;
            oidc.GetClaimsFromUserInfoEndpoint = false;
            oidc.Scope.Clear();
            foreach (var scope in (o.Scopes.Count > 0 ? o.Scopes : OidcOptions.DefaultScopes).Prepend("openid").Distinct(StringComparer.Ordinal))
            {
                oidc.Scope.Add(scope);
            }

            oidc.CorrelationCookie.SameSite = SameSiteMode.Lax;
            oidc.CorrelationCookie.SecurePolicy = CookieSecurePolicy.SameAsRequest;
            oidc.NonceCookie.SameSite = SameSiteMode.Lax;
            oidc.NonceCookie.SecurePolicy = CookieSecurePolicy.SameAsRequest;
            oidc.TokenValidationParameters.NameClaimType = o.UserNameClaim;
            // Mapping (which may create a user) waits until every check has passed: the nonce and at_hash checks of a
            // code flow run after OnTokenValidated, so that event is too early for anything with side effects.
            oidc.Events.OnTicketReceived = TicketReceivedAsync;
            oidc.Events.OnRemoteFailure = RemoteFailureAsync;
        });
    }

    /// <summary>Configuration mistakes are caught at start-up, with the setting's name.</summary>
    private static void Validate(OidcOptions o)
    {
        if (!Uri.TryCreate(o.Authority, UriKind.Absolute, out var authority) || (authority.Scheme != Uri.UriSchemeHttps && authority.Scheme != Uri.UriSchemeHttp))
        {
            throw new UsageException($"Hub:Oidc:Authority '{o.Authority}' is not an http(s) URL");
        }

        if (string.IsNullOrWhiteSpace(o.ClientId))
        {
            throw new UsageException("Hub:Oidc:ClientId is required when Hub:Oidc:Authority is set");
        }

        var loopback = authority.IsLoopback || (IPAddress.TryParse(authority.Host, out var ip) && IPAddress.IsLoopback(ip));
        if (!o.RequireHttpsMetadata && !loopback)
        {
            throw new UsageException($"Hub:Oidc:RequireHttpsMetadata may be false only for a loopback authority, not {authority.Host}");
        }

        if (o.RequireHttpsMetadata && authority.Scheme != Uri.UriSchemeHttps)
        {
            throw new UsageException($"Hub:Oidc:Authority must be https (or set RequireHttpsMetadata=false for a loopback test provider): {o.Authority}");
        }

        if (string.IsNullOrWhiteSpace(o.UserNameClaim))
        {
            throw new UsageException("Hub:Oidc:UserNameClaim must name a claim");
        }

        if (!o.CallbackPath.StartsWith('/'))
        {
            throw new UsageException($"Hub:Oidc:CallbackPath must be a path starting with '/': {o.CallbackPath}");
        }
    }

    public static void Map(IEndpointRouteBuilder app, HubOptions options)
    {
        if (!options.Oidc.Enabled)
        {
            return;
        }

        app.MapGet(LoginPath, (string? next) =>
            Results.Challenge(new AuthenticationProperties { RedirectUri = LoginPage.SafeNext(next) }, [Scheme])).AllowAnonymous();
    }

    /// <summary>
    /// A provider's user name in the hub's rules (lowercase letters, digits and '-', starting with a letter, at most
    /// 40): lowercased, every other character becomes '-', runs of '-' are one. Null when nothing usable is left.
    /// </summary>
    public static string? NormalizeUserName(string? raw)
    {
        if (string.IsNullOrWhiteSpace(raw))
        {
            return null;
        }

        var sb = new StringBuilder();
        foreach (var c in raw.Trim().ToLowerInvariant())
        {
            var folded = c is >= 'a' and <= 'z' or >= '0' and <= '9' ? c.ToString() : Fold(c);
            if (folded.Length > 0)
            {
                sb.Append(folded);
            }
            else if (sb.Length > 0 && sb[^1] != '-')
            {
                sb.Append('-');
            }
        }

        var name = sb.ToString().Trim('-');
        if (name.Length == 0)
        {
            return null;
        }

        if (name[0] is < 'a' or > 'z')
        {
            name = "u-" + name;
        }

        return name.Length > 40 ? name[..40].TrimEnd('-') : name;
    }

    // Latin letters with accents and ligatures, folded to ASCII (the hub runs without ICU, so no Unicode normalisation).
    private static readonly (string From, string To)[] Folds =
    [
        ("àáâãäåāăą", "a"), ("çćĉċč", "c"), ("ďđð", "d"), ("èéêëēĕėęě", "e"), ("ĝğġģ", "g"), ("ĥħ", "h"), ("ìíîïĩīĭįı", "i"),
        ("ĵ", "j"), ("ķ", "k"), ("ĺļľŀł", "l"), ("ñńņňŉ", "n"), ("òóôõöøōŏő", "o"), ("ŕŗř", "r"), ("śŝşš", "s"), ("ţťŧ", "t"),
        ("ùúûüũūŭůűų", "u"), ("ŵ", "w"), ("ýÿŷ", "y"), ("źżž", "z"), ("ß", "ss"), ("æ", "ae"), ("œ", "oe"), ("þ", "th"),
    ];

    private static string Fold(char c)
    {
        foreach (var (from, to) in Folds)
        {
            if (from.Contains(c, StringComparison.Ordinal))
            {
                return to;
            }
        }

        return "";
    }

    /// <summary>Maps a validated identity to the hub user it logs in as (creating or linking it when allowed).</summary>
    public static async Task<HubUser> MapUserAsync(ClaimsPrincipal identity, OidcOptions o, Accounts accounts, CancellationToken ct)
    {
        var subject = identity.FindFirst("sub")?.Value;
        var issuer = identity.FindFirst("iss")?.Value ?? identity.FindFirst("sub")?.Issuer;
        if (string.IsNullOrEmpty(subject) || string.IsNullOrEmpty(issuer))
        {
            throw new RefusedException("the provider's token has no subject (sub) or issuer (iss)");
        }

        bool? admin = o.AdminClaim is { Length: > 0 } claim
            ? identity.FindAll(claim).Any(c => o.AdminClaimValue is null ? c.Value is "true" or "1" : string.Equals(c.Value, o.AdminClaimValue, StringComparison.Ordinal))
            : null;
        if (await accounts.FindExternalAsync(issuer, subject, ct) is { } linked)
        {
            return admin is null ? linked : await accounts.LinkExternalAsync(linked.Name, issuer, subject, admin, ct);
        }

        var raw = identity.FindFirst(o.UserNameClaim)?.Value;
        var name = NormalizeUserName(raw)
            ?? throw new RefusedException($"the provider's token has no usable '{o.UserNameClaim}' claim to name a hub user");
        if (await accounts.FindUserAsync(name, ct) is { } existing)
        {
            if (!o.LinkExistingUsers || await accounts.IsLinkedAsync(name, ct))
            {
                throw new RefusedException($"the hub account '{name}' already exists and is not linked to this identity; ask an admin");
            }

            return await accounts.LinkExternalAsync(existing.Name, issuer, subject, admin, ct);
        }

        if (!o.AutoCreateUsers)
        {
            throw new RefusedException($"there is no hub account for '{name}'; ask an admin to create it");
        }

        try
        {
            return await accounts.CreateExternalUserAsync(name, issuer, subject, admin ?? false, o.DefaultQuota, ct);
        }
        catch (ConflictException)
        {
            // Two first logins at once: the other one made it; log in as that user if it is this identity.
            return await accounts.FindExternalAsync(issuer, subject, ct)
                ?? throw new RefusedException($"the hub account '{name}' already exists and is not linked to this identity; ask an admin");
        }
    }

    private static async Task TicketReceivedAsync(TicketReceivedContext ctx)
    {
        var http = ctx.HttpContext;
        var options = http.RequestServices.GetRequiredService<HubOptions>();
        try
        {
            var user = await MapUserAsync(ctx.Principal!, options.Oidc, http.RequestServices.GetRequiredService<Accounts>(), http.RequestAborted);
            // From here on it is a hub session like any other: the cookie handler signs this principal in.
            ctx.Principal = await HubClaims.SessionPrincipalAsync(user, http.RequestServices.GetRequiredService<Accounts>(), http.RequestAborted);
            ctx.ReturnUri = LoginPage.SafeNext(ctx.ReturnUri);
            Log(http).LoggedIn(user.Name);
        }
        catch (RefusedException ex)
        {
            Log(http).Refused(ex.Message);
            ctx.HandleResponse();
            await WritePageAsync(http, StatusCodes.Status403Forbidden, $"Login with {options.Oidc.ButtonLabel} refused", ex.Message);
        }
    }

    private static async Task RemoteFailureAsync(RemoteFailureContext ctx)
    {
        var http = ctx.HttpContext;
        var options = http.RequestServices.GetRequiredService<HubOptions>();
        Log(http).Failed(ctx.Failure?.Message ?? "unknown");
        ctx.HandleResponse();
        await WritePageAsync(http, StatusCodes.Status403Forbidden, $"Login with {options.Oidc.ButtonLabel} failed",
            "The provider's answer could not be verified (expired, replayed or not meant for this hub). Please try again.");
    }

    private static async Task WritePageAsync(HttpContext http, int status, string title, string message)
    {
        http.Response.StatusCode = status;
        http.Response.ContentType = "text/html; charset=utf-8";
        http.Response.Headers.CacheControl = "no-store";
        await http.Response.WriteAsync(LoginPage.RenderMessage(title, message));
    }

    private static Logger Log(HttpContext http) => new(http.RequestServices.GetRequiredService<ILoggerFactory>().CreateLogger("Dsvm.Hub.Oidc"));

    private sealed partial class Logger(ILogger logger)
    {
        [LoggerMessage(Level = LogLevel.Information, Message = "OpenID Connect login: {User}")]
        public partial void LoggedIn(string user);

        [LoggerMessage(Level = LogLevel.Warning, Message = "OpenID Connect login refused: {Reason}")]
        public partial void Refused(string reason);

        [LoggerMessage(Level = LogLevel.Warning, Message = "OpenID Connect login failed: {Reason}")]
        public partial void Failed(string reason);
    }
}
