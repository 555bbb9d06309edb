using System.Net;
using System.Text.RegularExpressions;
using Dsvm.Hub.Auth;
using Dsvm.Hub.Data;
using Dsvm.Hub.Services;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Hosting;
using Yarp.ReverseProxy.Forwarder;

namespace Dsvm.Hub.Proxy;

/// <summary>
/// The authenticating reverse proxy: <c>/user/OWNER/NAME/…</c> goes to that workspace's Jupyter server with the
/// workspace token injected, for its owner only (and admins, when allowed). The path the check reads is the
/// same one that is forwarded (Kestrel has already decoded and removed dot segments); encoded slashes and
/// backslashes are refused, and names must be exactly the lowercase names workspaces have.
/// </summary>
public sealed partial class WorkspaceProxy(IHttpForwarder forwarder, RouteTable routes, HubOptions options, IHostApplicationLifetime lifetime)
{
    public const string Prefix = "/user/";

    private static readonly HttpMessageInvoker Client = new(new SocketsHttpHandler
    {
        UseProxy = false,
        AllowAutoRedirect = false,
        AutomaticDecompression = DecompressionMethods.None,
        UseCookies = false,
        EnableMultipleHttp2Connections = true,
        ActivityHeadersPropagator = null,
        ConnectTimeout = TimeSpan.FromSeconds(10),
        PooledConnectionIdleTimeout = TimeSpan.FromMinutes(2),
    });

    private static readonly ForwarderRequestConfig RequestConfig = new() { ActivityTimeout = TimeSpan.FromMinutes(10) };

    public async Task HandleAsync(HttpContext context)
    {
        var raw = context.Features.Get<IHttpRequestFeature>()?.RawTarget ?? "";
        var path = context.Request.Path.Value ?? "";
        if (raw.Contains("%2f", StringComparison.OrdinalIgnoreCase) || raw.Contains("%5c", StringComparison.OrdinalIgnoreCase)
            || raw.Contains('\\', StringComparison.Ordinal) || path.Contains('\\', StringComparison.Ordinal))
        {
            await Plain(context, StatusCodes.Status400BadRequest, "encoded slashes and backslashes are not allowed in workspace paths");
            return;
        }

        var m = RoutePattern().Match(path);
        if (!m.Success)
        {
            await Plain(context, StatusCodes.Status404NotFound, "no such workspace");
            return;
        }

        var owner = m.Groups[1].Value;
        var name = m.Groups[2].Value;
        // A credential meant for Jupyter (JupyterLab sends its page's token) is not the hub's: the hub
        // authenticates the browser by its session cookie and injects the workspace token itself.
        var authorization = context.Request.Headers.Authorization.ToString();
        if (authorization.Length > 0 && !authorization.Contains(Dsvm.Hub.Data.Accounts.TokenPrefix, StringComparison.Ordinal))
        {
            context.Request.Headers.Remove("Authorization");
        }

        var auth = await context.AuthenticateAsync(HubClaims.Scheme);
        if (!auth.Succeeded || auth.Principal is null)
        {
            if (HttpMethods.IsGet(context.Request.Method) && AcceptsHtml(context.Request))
            {
                var next = Uri.EscapeDataString(path + context.Request.QueryString.Value);
                context.Response.Redirect($"/hub/login?next={next}");
                return;
            }

            await Plain(context, StatusCodes.Status401Unauthorized, "log in to the hub first");
            return;
        }

        var user = auth.Principal;
        var allowed = user.Name() == owner || (options.AdminAccess && user.IsAdmin());
        if (!allowed)
        {
            await Plain(context, StatusCodes.Status403Forbidden, "this workspace belongs to someone else");
            return;
        }

        // Using a workspace runs code in it: a read-only token may look at the hub, not drive Jupyter.
        if (!user.Has(Scopes.Workspaces) && !user.Has(Scopes.Admin))
        {
            await Plain(context, StatusCodes.Status403Forbidden, "this token's scopes do not include workspaces");
            return;
        }

        // Jupyter skips its own XSRF and origin checks for token-authenticated requests, and every proxied request
        // carries the workspace token: a browser session must come from the hub's own pages.
        if (user.Identity?.AuthenticationType == HubClaims.CookieScheme && !FromSameOrigin(context.Request))
        {
            await Plain(context, StatusCodes.Status403Forbidden, "cross-origin request refused");
            return;
        }

        var route = await routes.FindAsync(owner, name, context.RequestAborted);
        if (route is null)
        {
            await Plain(context, StatusCodes.Status503ServiceUnavailable, $"workspace {owner}/{name} is not running; start it from the hub");
            return;
        }

        // Upgraded connections (kernel websockets) last as long as a notebook is open: a stopping hub closes them
        // rather than waiting for them (the workspaces keep running; JupyterLab reconnects to the next hub).
        using var onStop = context.Features.Get<IHttpUpgradeFeature>()?.IsUpgradableRequest == true
            ? lifetime.ApplicationStopping.Register(context.Abort)
            : default;
        var error = await forwarder.SendAsync(context, route.Endpoint.GetLeftPart(UriPartial.Authority), Client, RequestConfig, new Transformer(route.Token));
        if (error != ForwarderError.None && !context.Response.HasStarted)
        {
            // The server went away under us: let the next request reload the route from the store.
            routes.Remove(owner, name);
            await Plain(context, StatusCodes.Status502BadGateway, $"workspace {owner}/{name} did not answer ({error})");
        }
    }

    /// <summary>
    /// Unsafe methods and websocket handshakes from a browser carry an Origin, which must be this hub (its host and
    /// port; the scheme may differ behind a TLS-terminating proxy). No Origin means no browser page sent it.
    /// </summary>
    private static bool FromSameOrigin(HttpRequest r)
    {
        var safe = HttpMethods.IsGet(r.Method) || HttpMethods.IsHead(r.Method) || HttpMethods.IsOptions(r.Method);
        var upgrade = r.HttpContext.Features.Get<IHttpUpgradeFeature>()?.IsUpgradableRequest == true;
        var origin = r.Headers.Origin.ToString();
        if ((safe && !upgrade) || origin.Length == 0)
        {
            return true;
        }

        return Uri.TryCreate(origin, UriKind.Absolute, out var o)
            && string.Equals(o.Host, r.Host.Host, StringComparison.OrdinalIgnoreCase)
            && (r.Host.Port ?? o.Port) == o.Port;
    }

    private static bool AcceptsHtml(HttpRequest r) => r.Headers.Accept.ToString().Contains("text/html", StringComparison.OrdinalIgnoreCase);

    private static Task Plain(HttpContext context, int status, string message)
    {
        context.Response.StatusCode = status;
        context.Response.ContentType = "text/plain; charset=utf-8";
        return context.Response.WriteAsync(message + "\n");
    }

    /// <summary>/user/{owner}/{name} or /user/{owner}/{name}/...: names exactly as workspaces and users have them.</summary>
    [GeneratedRegex("^/user/([a-z][a-z0-9-]{0,39})/([a-z][a-z0-9-]{0,39})(?:/|\\z)")]
    private static partial Regex RoutePattern();

    /// <summary>Every cookie the hub sets is named dsvm-… (session and its chunks, CSRF, antiforgery).</summary>
    private const string HubCookiePrefix = "dsvm-";

    /// <summary>Injects the workspace token; the hub's own cookies and credentials never reach Jupyter.</summary>
    private sealed class Transformer(string token) : HttpTransformer
    {
        public override async ValueTask TransformRequestAsync(HttpContext httpContext, HttpRequestMessage proxyRequest, string destinationPrefix, CancellationToken cancellationToken)
        {
            await base.TransformRequestAsync(httpContext, proxyRequest, destinationPrefix, cancellationToken);
            if (IsPageRequest(httpContext.Request))
            {
                // Pages come back uncompressed, so the token can be taken out of them (below).
                proxyRequest.Headers.Remove("Accept-Encoding");
            }

            proxyRequest.Headers.Remove("Authorization");
            proxyRequest.Headers.TryAddWithoutValidation("Authorization", $"token {token}");
            proxyRequest.Headers.Remove(HubClaims.CsrfHeader);
            // The hub has checked the browser's Origin against its own host; Jupyter would compare it with the
            // workspace's loopback address instead and refuse kernel WebSockets.
            proxyRequest.Headers.Remove("Origin");
            if (proxyRequest.Headers.TryGetValues("Cookie", out var cookies))
            {
                var kept = string.Join("; ", cookies.SelectMany(c => c.Split(';'))
                    .Select(c => c.Trim())
                    .Where(c => c.Length > 0 && !c.StartsWith(HubCookiePrefix, StringComparison.Ordinal)
                                && !c.StartsWith(".AspNetCore.", StringComparison.Ordinal)));
                proxyRequest.Headers.Remove("Cookie");
                if (kept.Length > 0)
                {
                    proxyRequest.Headers.TryAddWithoutValidation("Cookie", kept);
                }
            }
        }

        /// <summary>
        /// Jupyter writes its token into every page it renders (JupyterLab's PageConfig). The hub takes it out, so
        /// users never see workspace tokens and the page's scripts rely on the hub session instead.
        /// </summary>
        public override async ValueTask<bool> TransformResponseAsync(HttpContext httpContext, HttpResponseMessage? proxyResponse, CancellationToken cancellationToken)
        {
            var copyBody = await base.TransformResponseAsync(httpContext, proxyResponse, cancellationToken);
            if (proxyResponse?.Content is not { } content
                || content.Headers.ContentType?.MediaType != "text/html"
                || content.Headers.ContentEncoding.Count > 0)
            {
                return copyBody;
            }

            var html = await content.ReadAsStringAsync(cancellationToken);
            var body = System.Text.Encoding.UTF8.GetBytes(html.Replace(token, "", StringComparison.Ordinal));
            httpContext.Response.ContentLength = body.Length;
            await httpContext.Response.Body.WriteAsync(body, cancellationToken);
            return false;
        }

        private static bool IsPageRequest(HttpRequest request) =>
            request.Headers.Accept.ToString().Contains("text/html", StringComparison.OrdinalIgnoreCase);
    }
}
