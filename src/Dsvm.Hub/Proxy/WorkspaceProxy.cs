using System.Net;
using System.Text.RegularExpressions;
using Dsvm.Hub.Auth;
using Dsvm.Hub.Services;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Yarp.ReverseProxy.Forwarder;

namespace Dsvm.Hub.Proxy;

/// <summary>
/// The authenticating reverse proxy: <c>/user/OWNER/NAME/…</c> goes to that workspace's Jupyter server with the
/// workspace token injected, for its owner only (and admins, when allowed). The path the check reads is the
/// same one that is forwarded (Kestrel has already decoded and removed dot segments); encoded slashes and
/// backslashes are refused, and names must be exactly the lowercase names workspaces have.
/// </summary>
public sealed partial class WorkspaceProxy(IHttpForwarder forwarder, RouteTable routes, HubOptions options)
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

        var route = await routes.FindAsync(owner, name, context.RequestAborted);
        if (route is null)
        {
            await Plain(context, StatusCodes.Status503ServiceUnavailable, $"workspace {owner}/{name} is not running; start it from the hub");
            return;
        }

        var error = await forwarder.SendAsync(context, route.Endpoint.GetLeftPart(UriPartial.Authority), Client, RequestConfig, new Transformer(route.Token));
        if (error != ForwarderError.None && !context.Response.HasStarted)
        {
            // The server went away under us: let the next request reload the route from the store.
            routes.Remove(owner, name);
            await Plain(context, StatusCodes.Status502BadGateway, $"workspace {owner}/{name} did not answer ({error})");
        }
    }

    private static bool AcceptsHtml(HttpRequest r) => r.Headers.Accept.ToString().Contains("text/html", StringComparison.OrdinalIgnoreCase);

    private static Task Plain(HttpContext context, int status, string message)
    {
        context.Response.StatusCode = status;
        context.Response.ContentType = "text/plain; charset=utf-8";
        return context.Response.WriteAsync(message + "\n");
    }

    /// <summary>/user/{owner}/{name} or /user/{owner}/{name}/...: names exactly as workspaces and users have them.</summary>
    [GeneratedRegex("^/user/([a-z][a-z0-9-]{0,39})/([a-z][a-z0-9-]{0,39})(?:/|$)")]
    private static partial Regex RoutePattern();

    /// <summary>Injects the workspace token; the hub's own cookies and credentials never reach Jupyter.</summary>
    private sealed class Transformer(string token) : HttpTransformer
    {
        public override async ValueTask TransformRequestAsync(HttpContext httpContext, HttpRequestMessage proxyRequest, string destinationPrefix, CancellationToken cancellationToken)
        {
            await base.TransformRequestAsync(httpContext, proxyRequest, destinationPrefix, cancellationToken);
            proxyRequest.Headers.Remove("Authorization");
            proxyRequest.Headers.TryAddWithoutValidation("Authorization", $"token {token}");
            proxyRequest.Headers.Remove(HubClaims.CsrfHeader);
            if (proxyRequest.Headers.TryGetValues("Cookie", out var cookies))
            {
                var kept = string.Join("; ", cookies.SelectMany(c => c.Split(';'))
                    .Select(c => c.Trim())
                    .Where(c => c.Length > 0 && !c.StartsWith(HubClaims.CookieName + "=", StringComparison.Ordinal)
                                && !c.StartsWith(HubClaims.CookieName + "C", StringComparison.Ordinal)
                                && !c.StartsWith(HubClaims.CsrfCookie + "=", StringComparison.Ordinal)
                                && !c.StartsWith(".AspNetCore.", StringComparison.Ordinal)));
                proxyRequest.Headers.Remove("Cookie");
                if (kept.Length > 0)
                {
                    proxyRequest.Headers.TryAddWithoutValidation("Cookie", kept);
                }
            }
        }
    }
}
