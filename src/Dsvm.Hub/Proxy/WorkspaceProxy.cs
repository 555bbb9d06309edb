using System.Net;
using System.Security.Claims;
using System.Text.RegularExpressions;
using Dsvm.Core;
using Dsvm.Core.Workspaces;
using Dsvm.Hub.Auth;
using Dsvm.Hub.Data;
using Dsvm.Hub.Services;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Extensions;
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
public sealed partial class WorkspaceProxy(
    IHttpForwarder forwarder, RouteTable routes, HubOptions options, IHostApplicationLifetime lifetime,
    WorkspaceOrigins origins, Accounts accounts, IWorkspaceStore store)
{
    public const string Prefix = "/user/";

    /// <summary>The authentication type of a principal made from a workspace host's own cookie.</summary>
    public const string WorkspaceCookieScheme = "dsvm-ws-cookie";

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

    // One transformer per route (its token and prefix), made when the route is first used, not per request.
    private readonly System.Runtime.CompilerServices.ConditionalWeakTable<WorkspaceRoute, Transformer> _transformers = new();

    private static readonly ForwarderRequestConfig RequestConfig = new() { ActivityTimeout = TimeSpan.FromMinutes(10) };

    /// <summary>
    /// <c>/user/…</c> on the hub's host. Single-origin mode: the workspace is proxied here. With per-workspace origins
    /// the hub only checks the session and the owner and sends the browser to the workspace's own host with a
    /// one-time code; nothing of the workspace is served on the hub's origin.
    /// </summary>
    public async Task HandleAsync(HttpContext context)
    {
        if (await ParseAsync(context) is not { } parsed)
        {
            return;
        }

        var (owner, name) = parsed;

        var auth = await context.AuthenticateAsync(HubClaims.Scheme);
        if (!auth.Succeeded || auth.Principal is null)
        {
            if (HttpMethods.IsGet(context.Request.Method) && AcceptsHtml(context.Request))
            {
                var next = Uri.EscapeDataString(context.Request.Path.Value + context.Request.QueryString.Value);
                context.Response.Redirect($"/hub/login?next={next}");
                return;
            }

            await Plain(context, StatusCodes.Status401Unauthorized, "log in to the hub first");
            return;
        }

        var user = auth.Principal;
        if (!await AuthorizeAsync(context, user, owner))
        {
            return;
        }

        if (origins.Enabled)
        {
            await HandshakeAsync(context, user, owner, name);
            return;
        }

        await ForwardAsync(context, user, owner, name, workspaceId: null);
    }

    /// <summary>
    /// A request to a workspace's own host (per-workspace origins): only that workspace's paths, authenticated by the
    /// host's own cookie (got by exchanging the hub's one-time code) or a hub API token in the Authorization header;
    /// the hub's session cookie never comes here, and the hub's API is not served here.
    /// </summary>
    public async Task HandleWorkspaceHostAsync(HttpContext context, string workspaceId)
    {
        if (await ParseAsync(context) is not { } parsed)
        {
            return;
        }

        var (owner, name) = parsed;

        var request = context.Request;
        if (request.Query.TryGetValue(WorkspaceOrigins.CodeParameter, out var code))
        {
            await ExchangeCodeAsync(context, workspaceId, code.ToString());
            return;
        }

        ClaimsPrincipal? user = null;
        if (request.Headers.Authorization.Count > 0)
        {
            var auth = await context.AuthenticateAsync(HubClaims.TokenScheme);
            user = auth.Succeeded ? auth.Principal : null;
        }
        else if (origins.UnprotectCookie(request.Cookies[WorkspaceOrigins.CookieName], workspaceId) is { } cookie
                 && await SignedInUserAsync(cookie, context.RequestAborted) is { } hubUser)
        {
            user = HubClaims.Principal(hubUser, HubClaims.SessionScopes(hubUser), WorkspaceCookieScheme);
        }

        if (user is null)
        {
            if (HttpMethods.IsGet(request.Method) && AcceptsHtml(request) && request.Headers.Authorization.Count == 0)
            {
                // The hub checks its session and sends the browser back here with a fresh code.
                context.Response.Redirect(origins.HubOrigin(request) + request.Path.Value + request.QueryString.Value);
                return;
            }

            await Plain(context, StatusCodes.Status401Unauthorized, "open this workspace from the hub first");
            return;
        }

        if (await AuthorizeAsync(context, user, owner))
        {
            await ForwardAsync(context, user, owner, name, workspaceId);
        }
    }

    /// <summary>A workspace host's sign-in lasts only as long as its user and the hub session it came from (logout, password change, user deletion end it).</summary>
    private Task<HubUser?> SignedInUserAsync(WorkspaceSignIn signIn, CancellationToken ct) =>
        accounts.SignedInUserAsync(signIn.UserName, signIn.UserId, signIn.SessionId.Length == 0 ? null : signIn.SessionId, ct);

    /// <summary>The path's owner and workspace name, or null after answering 400/404; drops Jupyter's own credentials.</summary>
    private static async Task<(string Owner, string Name)?> ParseAsync(HttpContext context)
    {
        var raw = context.Features.Get<IHttpRequestFeature>()?.RawTarget ?? "";
        raw = raw.IndexOf('?', StringComparison.Ordinal) is var q and >= 0 ? raw[..q] : raw; // the path, not the query
        var path = context.Request.Path.Value ?? "";
        if (raw.Contains("%2f", StringComparison.OrdinalIgnoreCase) || raw.Contains("%5c", StringComparison.OrdinalIgnoreCase)
            || raw.Contains('\\', StringComparison.Ordinal) || path.Contains('\\', StringComparison.Ordinal))
        {
            await Plain(context, StatusCodes.Status400BadRequest, "encoded slashes and backslashes are not allowed in workspace paths");
            return null;
        }

        var m = RoutePattern().Match(path);
        if (!m.Success)
        {
            await Plain(context, StatusCodes.Status404NotFound, "no such workspace");
            return null;
        }

        // A credential meant for Jupyter (JupyterLab sends its page's token) is not the hub's: the hub
        // authenticates the browser itself and injects the workspace token.
        var authorization = context.Request.Headers.Authorization.ToString();
        if (authorization.Length > 0 && !authorization.Contains(Accounts.TokenPrefix, StringComparison.Ordinal))
        {
            context.Request.Headers.Remove("Authorization");
        }

        return (m.Groups[1].Value, m.Groups[2].Value);
    }

    /// <summary>The owner (or an admin, when allowed) with a scope that may use workspaces; otherwise answers 403.</summary>
    private async Task<bool> AuthorizeAsync(HttpContext context, ClaimsPrincipal user, string owner)
    {
        var allowed = user.Name() == owner || (options.AdminAccess && user.IsAdmin());
        if (!allowed)
        {
            await Plain(context, StatusCodes.Status403Forbidden, "this workspace belongs to someone else");
            return false;
        }

        // Using a workspace runs code in it: a read-only token may look at the hub, not drive Jupyter.
        if (!user.Has(Scopes.Workspaces) && !user.Has(Scopes.Admin))
        {
            await Plain(context, StatusCodes.Status403Forbidden, "this token's scopes do not include workspaces");
            return false;
        }

        return true;
    }

    /// <summary>The hub's half of the handshake: a one-time code for this user and workspace, and a redirect to its host.</summary>
    private async Task HandshakeAsync(HttpContext context, ClaimsPrincipal user, string owner, string name)
    {
        var request = context.Request;
        var w = await store.FindAsync(owner, name, context.RequestAborted);
        if (w is null)
        {
            await Plain(context, StatusCodes.Status503ServiceUnavailable, $"workspace {owner}/{name} is not running; start it from the hub");
            return;
        }

        var origin = origins.WorkspaceOrigin(w.Id, request);
        if (!HttpMethods.IsGet(request.Method) && !HttpMethods.IsHead(request.Method))
        {
            await Plain(context, StatusCodes.Status404NotFound, $"workspaces are served on their own host: {origin}{request.Path.Value}");
            return;
        }

        var code = origins.IssueCode(w.Id, new WorkspaceSignIn(user.FindFirst(HubClaims.UserId)?.Value ?? "", user.Name(), user.Session() ?? ""));
        var query = new QueryBuilder(request.Query.Where(q => q.Key != WorkspaceOrigins.CodeParameter)) { { WorkspaceOrigins.CodeParameter, code } };
        context.Response.Headers.CacheControl = "no-store";
        context.Response.Headers["Referrer-Policy"] = "no-referrer";
        context.Response.Redirect(origin + request.Path.Value + query.ToQueryString());
    }

    /// <summary>The workspace host's half: the code (once, in time, for this host) becomes this host's own cookie.</summary>
    private async Task ExchangeCodeAsync(HttpContext context, string workspaceId, string code)
    {
        var request = context.Request;
        var redeemed = origins.Redeem(code, workspaceId);
        if (redeemed is null || await SignedInUserAsync(redeemed, context.RequestAborted) is null)
        {
            await Plain(context, StatusCodes.Status403Forbidden, "this sign-in link has expired or was used already; open the workspace from the hub again");
            return;
        }

        context.Response.Cookies.Append(WorkspaceOrigins.CookieName, origins.ProtectCookie(workspaceId, redeemed), new CookieOptions
        {
            HttpOnly = true,
            Secure = request.IsHttps,
            SameSite = SameSiteMode.Lax,
            Path = "/",
            MaxAge = WorkspaceOrigins.CookieLifetime,
        });
        var query = new QueryBuilder(request.Query.Where(q => q.Key != WorkspaceOrigins.CodeParameter));
        context.Response.Headers.CacheControl = "no-store";
        context.Response.Headers["Referrer-Policy"] = "no-referrer";
        context.Response.Redirect(request.Path.Value + query.ToQueryString());
    }

    private async Task ForwardAsync(HttpContext context, ClaimsPrincipal user, string owner, string name, string? workspaceId)
    {
        // Jupyter skips its own XSRF and origin checks for token-authenticated requests, and every proxied request
        // carries the workspace token: a browser session must come from the workspace's (or hub's) own pages.
        if (user.Identity?.AuthenticationType != HubClaims.TokenScheme && !FromSameOrigin(context.Request))
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

        if (workspaceId is not null && route.Id != workspaceId)
        {
            await Plain(context, StatusCodes.Status404NotFound, "no such workspace on this host");
            return;
        }

        // Upgraded connections (kernel websockets) last as long as a notebook is open: a stopping hub closes them
        // rather than waiting for them (the workspaces keep running; JupyterLab reconnects to the next hub).
        using var onStop = context.Features.Get<IHttpUpgradeFeature>()?.IsUpgradableRequest == true
            ? lifetime.ApplicationStopping.Register(context.Abort)
            : default;
        var error = await forwarder.SendAsync(context, route.Destination, Client, RequestConfig,
            _transformers.GetValue(route, static r => new Transformer(r)));
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

    /// <summary>Every cookie the hub sets is named dsvm-… (session and its chunks, CSRF, antiforgery, workspace hosts).</summary>
    private const string HubCookiePrefix = "dsvm-";

    /// <summary>Jupyter's own pages (they carry its token in their PageConfig): the first path segment after the base URL.</summary>
    private static readonly HashSet<string> PageSegments = new(StringComparer.Ordinal) { "", "lab", "tree", "notebooks", "login", "doc", "edit", "consoles", "terminals" };

    /// <summary>Token removal reads at most this much of a page; a larger answer is streamed unmodified.</summary>
    public const int MaxRewrittenPageBytes = 1024 * 1024;

    /// <summary>A GET of one of Jupyter's own pages under this workspace's base URL.</summary>
    internal static bool IsJupyterPage(HttpRequest request, string prefix)
    {
        var path = request.Path.Value ?? "";
        if (!HttpMethods.IsGet(request.Method) || !path.StartsWith(prefix, StringComparison.Ordinal))
        {
            return false;
        }

        var rest = path.AsSpan(prefix.Length);
        var slash = rest.IndexOf('/');
        return PageSegments.GetAlternateLookup<ReadOnlySpan<char>>().Contains(slash < 0 ? rest : rest[..slash]);
    }

    /// <summary>
    /// A cookie a workspace sets stays inside that workspace: host-only (no Domain), under its own path, and never
    /// named like one of the hub's cookies. Anything else is dropped or rewritten.
    /// </summary>
    internal static string? ConfineSetCookie(string header, string prefix)
    {
        if (!Microsoft.Net.Http.Headers.SetCookieHeaderValue.TryParse(header, out var cookie) || cookie.Name.Value is not { Length: > 0 } name)
        {
            return null;
        }

        if (name.StartsWith(HubCookiePrefix, StringComparison.OrdinalIgnoreCase) || name.StartsWith(".AspNetCore.", StringComparison.OrdinalIgnoreCase)
            || name.StartsWith("__Host-", StringComparison.OrdinalIgnoreCase))
        {
            return null;
        }

        cookie.Domain = null;
        if (cookie.Path.Value is not { } path || !(path + "/").StartsWith(prefix, StringComparison.Ordinal) || path.Contains("..", StringComparison.Ordinal))
        {
            cookie.Path = prefix;
        }

        return cookie.ToString();
    }

    /// <summary>Injects the workspace token; the hub's own cookies and credentials never reach Jupyter.</summary>
    private sealed class Transformer(WorkspaceRoute route) : HttpTransformer
    {

        public override async ValueTask TransformRequestAsync(HttpContext httpContext, HttpRequestMessage proxyRequest, string destinationPrefix, CancellationToken cancellationToken)
        {
            await base.TransformRequestAsync(httpContext, proxyRequest, destinationPrefix, cancellationToken);
            if (IsJupyterPage(httpContext.Request, route.Prefix))
            {
                // Pages come back uncompressed, so the token can be taken out of them (below).
                proxyRequest.Headers.Remove("Accept-Encoding");
            }

            proxyRequest.Headers.Remove("Authorization");
            proxyRequest.Headers.TryAddWithoutValidation("Authorization", route.Authorization);
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
        /// Cookies are confined to the workspace (<see cref="ConfineSetCookie"/>). Jupyter writes its token into the
        /// pages it renders (JupyterLab's PageConfig): the hub takes it out of those pages only, reading at most
        /// <see cref="MaxRewrittenPageBytes"/>; every other answer streams through unmodified.
        /// </summary>
        public override async ValueTask<bool> TransformResponseAsync(HttpContext httpContext, HttpResponseMessage? proxyResponse, CancellationToken cancellationToken)
        {
            var copyBody = await base.TransformResponseAsync(httpContext, proxyResponse, cancellationToken);
            var headers = httpContext.Response.Headers;
            if (headers.SetCookie.Count > 0)
            {
                var confined = headers.SetCookie.Select(c => c is null ? null : ConfineSetCookie(c, route.Prefix)).OfType<string>().ToArray();
                headers.SetCookie = confined;
            }

            if (proxyResponse?.Content is not { } content
                || !IsJupyterPage(httpContext.Request, route.Prefix)
                || content.Headers.ContentType?.MediaType != "text/html"
                || content.Headers.ContentEncoding.Count > 0
                || content.Headers.ContentLength > MaxRewrittenPageBytes)
            {
                return copyBody;
            }

            var buffer = System.Buffers.ArrayPool<byte>.Shared.Rent(MaxRewrittenPageBytes + 1);
            try
            {
                await using var body = await content.ReadAsStreamAsync(cancellationToken);
                var length = 0;
                int read;
                while (length < buffer.Length && (read = await body.ReadAsync(buffer.AsMemory(length), cancellationToken)) > 0)
                {
                    length += read;
                }

                if (length > MaxRewrittenPageBytes)
                {
                    // Not a page Jupyter renders: pass it on as it is, without holding more of it.
                    await httpContext.Response.Body.WriteAsync(buffer.AsMemory(0, length), cancellationToken);
                    await body.CopyToAsync(httpContext.Response.Body, cancellationToken);
                    return false;
                }

                var page = RemoveToken(buffer.AsSpan(0, length), System.Text.Encoding.ASCII.GetBytes(route.Token));
                httpContext.Response.ContentLength = page.Length;
                await httpContext.Response.Body.WriteAsync(page, cancellationToken);
                return false;
            }
            finally
            {
                System.Buffers.ArrayPool<byte>.Shared.Return(buffer);
            }
        }

        private static byte[] RemoveToken(ReadOnlySpan<byte> page, ReadOnlySpan<byte> secret)
        {
            var result = new System.IO.MemoryStream(page.Length);
            while (secret.Length > 0 && page.IndexOf(secret) is var i and >= 0)
            {
                result.Write(page[..i]);
                page = page[(i + secret.Length)..];
            }

            result.Write(page);
            return result.ToArray();
        }
    }
}
