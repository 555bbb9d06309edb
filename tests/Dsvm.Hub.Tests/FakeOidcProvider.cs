using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace Dsvm.Hub.Tests;

/// <summary>Who the fake provider says is logging in next.</summary>
internal sealed record FakeIdentity(string Subject, string? UserName, IReadOnlyList<string>? Groups = null);

/// <summary>What the fake provider gets wrong on purpose in the next id_token.</summary>
public enum TokenTamper
{
    None,
    WrongAudience,
    BadSignature,
    WrongNonce,
    WrongIssuer,
    Expired,
}

/// <summary>
/// A minimal OpenID Connect provider on 127.0.0.1 (Kestrel): discovery, a JWKS with one RSA key, /authorize that
/// logs <see cref="Next"/> in at once and redirects back with a code and the state, and /token that checks the
/// client secret, the redirect URI and PKCE, and answers a signed id_token carrying the nonce. Codes work once.
/// </summary>
internal sealed class FakeOidcProvider : IAsyncDisposable
{
    public const string ClientId = "dsvm-hub";
    public const string ClientSecret = "hub-client-secret";

    private readonly WebApplication _app;
    private readonly RSA _rsa = RSA.Create(2048);
    private readonly RSA _stranger = RSA.Create(2048);
    private readonly ConcurrentDictionary<string, Grant> _codes = new(StringComparer.Ordinal);

    private sealed record Grant(FakeIdentity Identity, string? Nonce, string RedirectUri, string? Challenge);

    private FakeOidcProvider(WebApplication app) => _app = app;

    /// <summary>http://127.0.0.1:PORT (no trailing slash): the issuer and the authority.</summary>
    public string Issuer { get; private set; } = "";

    public FakeIdentity Next { get; set; } = new("subject-1", "alice");

    public TokenTamper Tamper { get; set; }

    /// <summary>Token requests answered with an id_token.</summary>
    public int TokensIssued => Volatile.Read(ref _tokensIssued);

    private int _tokensIssued;

    public static async Task<FakeOidcProvider> StartAsync()
    {
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { ContentRootPath = AppContext.BaseDirectory });
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        var app = builder.Build();
        var self = new FakeOidcProvider(app);
        app.MapGet("/.well-known/openid-configuration", () => Results.Json(new Dictionary<string, object>
        {
            ["issuer"] = self.Issuer,
            ["authorization_endpoint"] = self.Issuer + "/authorize",
            ["token_endpoint"] = self.Issuer + "/token",
            ["jwks_uri"] = self.Issuer + "/jwks",
            ["response_types_supported"] = new[] { "code" },
            ["subject_types_supported"] = new[] { "public" },
            ["id_token_signing_alg_values_supported"] = new[] { "RS256" },
            ["code_challenge_methods_supported"] = new[] { "S256" },
            ["token_endpoint_auth_methods_supported"] = new[] { "client_secret_post", "client_secret_basic" },
        }));
        app.MapGet("/jwks", () =>
        {
            var p = self._rsa.ExportParameters(includePrivateParameters: false);
            return Results.Json(new { keys = new[] { new { kty = "RSA", use = "sig", alg = "RS256", kid = "k1", n = Base64UrlEncoder.Encode(p.Modulus), e = Base64UrlEncoder.Encode(p.Exponent) } } });
        });
        app.MapGet("/authorize", (Func<HttpContext, IResult>)(http => self.Authorize(http)));
        app.MapPost("/token", (Func<HttpContext, Task<IResult>>)(http => self.TokenAsync(http)));
        await app.StartAsync();
        self.Issuer = app.Urls.First().TrimEnd('/');
        return self;
    }

    private IResult Authorize(HttpContext http)
    {
        var q = http.Request.Query;
        if (q["client_id"] != ClientId || q["response_type"] != "code" || string.IsNullOrEmpty(q["redirect_uri"]) || string.IsNullOrEmpty(q["state"]))
        {
            return Results.BadRequest(new { error = "invalid_request" });
        }

        var code = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16));
        _codes[code] = new Grant(Next, q["nonce"], q["redirect_uri"]!, q["code_challenge_method"] == "S256" ? q["code_challenge"].ToString() : null);
        var redirect = $"{q["redirect_uri"]}?code={code}&state={Uri.EscapeDataString(q["state"]!)}&iss={Uri.EscapeDataString(Issuer)}";
        return Results.Redirect(redirect);
    }

    private async Task<IResult> TokenAsync(HttpContext http)
    {
        var form = await http.Request.ReadFormAsync();
        var (id, secret) = ClientCredentials(http, form);
        if (id != ClientId || secret != ClientSecret)
        {
            return Results.Json(new { error = "invalid_client" }, statusCode: 401);
        }

        if (form["grant_type"] != "authorization_code" || !_codes.TryRemove(form["code"].ToString(), out var grant))
        {
            return Results.Json(new { error = "invalid_grant" }, statusCode: 400);
        }

        if (form["redirect_uri"] != grant.RedirectUri)
        {
            return Results.Json(new { error = "invalid_grant", error_description = "redirect_uri" }, statusCode: 400);
        }

        if (grant.Challenge is not null && Base64UrlEncoder.Encode(SHA256.HashData(Encoding.ASCII.GetBytes(form["code_verifier"].ToString()))) != grant.Challenge)
        {
            return Results.Json(new { error = "invalid_grant", error_description = "pkce" }, statusCode: 400);
        }

        var accessToken = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(24));
        Interlocked.Increment(ref _tokensIssued);
        return Results.Json(new { access_token = accessToken, token_type = "Bearer", expires_in = 300, id_token = IdToken(grant, accessToken) });
    }

    private static (string? Id, string? Secret) ClientCredentials(HttpContext http, IFormCollection form)
    {
        var header = http.Request.Headers.Authorization.ToString();
        if (header.StartsWith("Basic ", StringComparison.Ordinal))
        {
            var pair = Encoding.UTF8.GetString(Convert.FromBase64String(header[6..])).Split(':', 2);
            return (Uri.UnescapeDataString(pair[0]), Uri.UnescapeDataString(pair[1]));
        }

        return (form["client_id"], form["client_secret"]);
    }

    private string IdToken(Grant grant, string accessToken)
    {
        var now = DateTime.UtcNow;
        var claims = new Dictionary<string, object>
        {
            ["sub"] = grant.Identity.Subject,
            ["nonce"] = Tamper == TokenTamper.WrongNonce ? "not-the-nonce" : grant.Nonce ?? "",
            // at_hash: the left half of sha256(access_token), as the spec says for RS256.
            ["at_hash"] = Base64UrlEncoder.Encode(SHA256.HashData(Encoding.ASCII.GetBytes(accessToken))[..16]),
        };
        if (grant.Identity.UserName is { } userName)
        {
            claims["preferred_username"] = userName;
        }

        if (grant.Identity.Groups is { } groups)
        {
            claims["groups"] = groups.ToList();
        }

        var key = new RsaSecurityKey(Tamper == TokenTamper.BadSignature ? _stranger : _rsa) { KeyId = "k1" };
        var descriptor = new SecurityTokenDescriptor
        {
            Issuer = Tamper == TokenTamper.WrongIssuer ? "http://127.0.0.1:1" : Issuer,
            Audience = Tamper == TokenTamper.WrongAudience ? "some-other-client" : ClientId,
            IssuedAt = Tamper == TokenTamper.Expired ? now.AddHours(-2) : now,
            NotBefore = Tamper == TokenTamper.Expired ? now.AddHours(-2) : now.AddSeconds(-5),
            Expires = Tamper == TokenTamper.Expired ? now.AddHours(-1) : now.AddMinutes(5),
            Claims = claims,
            SigningCredentials = new SigningCredentials(key, SecurityAlgorithms.RsaSha256),
        };
        return new JsonWebTokenHandler { SetDefaultTimesOnTokenCreation = false }.CreateToken(descriptor);
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
        _rsa.Dispose();
        _stranger.Dispose();
    }
}
