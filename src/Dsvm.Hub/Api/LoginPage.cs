using System.Net;
using Dsvm.Hub.Auth;
using Dsvm.Hub.Data;
using Microsoft.AspNetCore.Antiforgery;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace Dsvm.Hub.Api;

/// <summary>The hub's login form: server-rendered, antiforgery-protected, and redirecting only to local paths.</summary>
public static class LoginPage
{
    public static void Map(IEndpointRouteBuilder app)
    {
        app.MapGet("/hub/login", (HttpContext http, IAntiforgery antiforgery, HubOptions options, string? next, string? error) =>
        {
            var tokens = antiforgery.GetAndStoreTokens(http);
            var message = error switch { null => null, "admins" => AdminsOnly(options), _ => WrongPassword };
            return Results.Content(Render(options, tokens.FormFieldName, tokens.RequestToken!, SafeNext(next), message), "text/html; charset=utf-8");
        }).AllowAnonymous();

        app.MapPost("/hub/login", async (HttpContext http, IAntiforgery antiforgery, Accounts accounts, LoginThrottle throttle, HubOptions options) =>
        {
            if (!await antiforgery.IsRequestValidAsync(http))
            {
                // A forged post, or a form older than its cookie: 400 with a fresh form.
                var tokens = antiforgery.GetAndStoreTokens(http);
                var formNext = http.Request.HasFormContentType ? (await http.Request.ReadFormAsync())["next"].ToString() : null;
                return Results.Content(Render(options, tokens.FormFieldName, tokens.RequestToken!, SafeNext(formNext), FormExpired),
                    "text/html; charset=utf-8", statusCode: StatusCodes.Status400BadRequest);
            }

            var form = await http.Request.ReadFormAsync();
            var name = form["name"].ToString();
            var next = SafeNext(form["next"].ToString());
            throttle.ThrowIfBlocked(name, http.Connection.RemoteIpAddress);
            var user = await accounts.VerifyPasswordAsync(name, form["password"].ToString(), http.RequestAborted);
            if (user is null)
            {
                throttle.Failed(name, http.Connection.RemoteIpAddress);
                return Results.Redirect($"/hub/login?error=1&next={Uri.EscapeDataString(next)}");
            }

            throttle.Succeeded(name, http.Connection.RemoteIpAddress);
            if (!PasswordLoginAllowed(options, user))
            {
                return Results.Redirect($"/hub/login?error=admins&next={Uri.EscapeDataString(next)}");
            }

            await http.SignInAsync(HubClaims.CookieScheme, await HubClaims.SessionPrincipalAsync(user, accounts, http.RequestAborted));
            return Results.Redirect(next);
        }).AllowAnonymous().DisableAntiforgery();

        app.MapPost("/hub/logout", async (HttpContext http, IAntiforgery antiforgery, Accounts accounts) =>
        {
            if (!await antiforgery.IsRequestValidAsync(http))
            {
                return Results.Problem(statusCode: StatusCodes.Status400BadRequest, title: "antiforgery", detail: "missing or invalid antiforgery token");
            }

            await ApiEndpoints.EndSessionAsync(http, accounts);
            return Results.Redirect("/hub/login");
        }).AllowAnonymous().DisableAntiforgery();
    }

    /// <summary>Only a path on this hub: no scheme, no host, no "//" or "/\" (browsers treat those as other hosts).</summary>
    public static string SafeNext(string? next)
    {
        if (string.IsNullOrEmpty(next) || next[0] != '/' || next.StartsWith("//", StringComparison.Ordinal)
            || next.StartsWith("/\\", StringComparison.Ordinal) || next.Contains('\\', StringComparison.Ordinal)
            || next.Any(char.IsControl))
        {
            return "/hub/";
        }

        return next;
    }

    /// <summary>With OpenID Connect and <see cref="OidcOptions.PasswordLoginForAdminsOnly"/>, passwords are for admins only.</summary>
    public static bool PasswordLoginAllowed(HubOptions options, HubUser user) =>
        user.IsAdmin || !(options.Oidc.Enabled && options.Oidc.PasswordLoginForAdminsOnly);

    public static string AdminsOnly(HubOptions options) => $"Password login is for admins only here: log in with {options.Oidc.ButtonLabel}.";

    /// <summary>A page with one message (OpenID Connect refusals and failures), with a way back to the login page.</summary>
    public static string RenderMessage(string title, string message) => $$"""
        <!doctype html>
        <html lang="en"><head><meta charset="utf-8"><title>OpenDSVM hub: {{WebUtility.HtmlEncode(title)}}</title>
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <link rel="stylesheet" href="/hub/static/hub.css"></head>
        <body class="login"><main>
        <h1>{{WebUtility.HtmlEncode(title)}}</h1>
        <p class="error" role="alert">{{WebUtility.HtmlEncode(message)}}</p>
        <p><a href="/hub/login">Back to the login page</a></p>
        </main></body></html>
        """;

    private const string WrongPassword = "Wrong user name or password.";
    private const string FormExpired = "The form expired; please log in again.";

    private static string Render(HubOptions options, string field, string token, string next, string? error)
    {
        var e = error is null ? "" : $"<p class=\"error\" role=\"alert\">{WebUtility.HtmlEncode(error)}</p>";
        var sso = options.Oidc.Enabled
            ? $"<p><a class=\"button sso\" href=\"{Auth.OidcLogin.LoginPath}?next={WebUtility.HtmlEncode(Uri.EscapeDataString(next))}\">Log in with {WebUtility.HtmlEncode(options.Oidc.ButtonLabel)}</a></p>"
            : "";
        return $$"""
            <!doctype html>
            <html lang="en"><head><meta charset="utf-8"><title>OpenDSVM hub: log in</title>
            <meta name="viewport" content="width=device-width, initial-scale=1">
            <link rel="stylesheet" href="/hub/static/hub.css"></head>
            <body class="login"><main>
            <h1>OpenDSVM</h1>
            {{e}}
            {{sso}}
            <form method="post" action="/hub/login">
              <input type="hidden" name="{{WebUtility.HtmlEncode(field)}}" value="{{WebUtility.HtmlEncode(token)}}">
              <input type="hidden" name="next" value="{{WebUtility.HtmlEncode(next)}}">
              <label>User name <input name="name" autocomplete="username" required autofocus></label>
              <label>Password <input name="password" type="password" autocomplete="current-password" required></label>
              <button type="submit">Log in</button>
            </form></main></body></html>
            """;
    }
}
