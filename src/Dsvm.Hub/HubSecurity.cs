using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Dsvm.Hub;

/// <summary>
/// The hub's own answers (pages, API, static files; not the proxied workspaces, whose Jupyter sets its own) get
/// security headers; answers that may carry a secret are never stored; forwarded headers from an address that is not a
/// trusted proxy are reported once.
/// </summary>
public static partial class HubSecurity
{
    /// <summary>
    /// The web UI (wwwroot) and the login page load only their own script and style sheet, call only the hub's API and
    /// have no inline script, style or handler; nothing may frame them.
    /// </summary>
    public const string ContentSecurityPolicy =
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; "
        + "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

    /// <summary>Adds the headers to every answer outside the workspace proxy (runs before the proxy).</summary>
    public static void UseSecurityHeaders(this WebApplication app)
    {
        app.Use((ctx, next) =>
        {
            if (!ctx.Request.Path.StartsWithSegments("/user", StringComparison.Ordinal))
            {
                var response = ctx.Response;
                // OnStarting: the exception handler clears headers, callbacks survive it.
                response.OnStarting(() =>
                {
                    var h = response.Headers;
                    h.XContentTypeOptions = "nosniff";
                    h.XFrameOptions = "DENY";
                    h["Referrer-Policy"] = "no-referrer";
                    h.ContentSecurityPolicy = ContentSecurityPolicy;
                    if (h.CacheControl.Count == 0 && !ctx.Request.Path.StartsWithSegments("/hub/static", StringComparison.Ordinal))
                    {
                        // API answers and pages are per user and may carry a secret (tokens, passwords, antiforgery).
                        h.CacheControl = "no-store";
                    }

                    return Task.CompletedTask;
                });
            }

            return next(ctx);
        });
    }

    /// <summary>
    /// X-Forwarded-* headers from an address that is not in Hub:TrustedProxies are ignored (the forwarded-headers
    /// middleware believes trusted proxies only); the first time they arrive, the hub says so: behind a proxy that is
    /// not listed, every client shares the proxy's address (login throttling) and https is not seen (cookies).
    /// </summary>
    public static void UseUntrustedForwardedWarning(this WebApplication app, IReadOnlyList<IPAddress> proxies, IReadOnlyList<IPNetwork> networks)
    {
        var logger = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("Dsvm.Hub.ForwardedHeaders");
        var warned = 0;
        app.Use((ctx, next) =>
        {
            if (Volatile.Read(ref warned) == 0 && HasForwardedHeaders(ctx.Request) && !Trusted(ctx.Connection.RemoteIpAddress, proxies, networks)
                && Interlocked.Exchange(ref warned, 1) == 0)
            {
                LogUntrustedForwarded(logger, ctx.Connection.RemoteIpAddress?.ToString() ?? "unknown");
            }

            return next(ctx);
        });
    }

    private static bool HasForwardedHeaders(HttpRequest r) =>
        r.Headers.ContainsKey("X-Forwarded-For") || r.Headers.ContainsKey("X-Forwarded-Proto") || r.Headers.ContainsKey("X-Forwarded-Host")
        || r.Headers.ContainsKey("Forwarded");

    private static bool Trusted(IPAddress? address, IReadOnlyList<IPAddress> proxies, IReadOnlyList<IPNetwork> networks)
    {
        if (address is null)
        {
            return false;
        }

        if (address.IsIPv4MappedToIPv6)
        {
            address = address.MapToIPv4();
        }

        return proxies.Any(p => p.Equals(address)) || networks.Any(n => n.Contains(address));
    }

    [LoggerMessage(Level = LogLevel.Warning, Message =
        "X-Forwarded-* headers arrived from {Address}, which is not in Hub:TrustedProxies: they are ignored (the client address is "
        + "{Address}, the scheme as received). If a reverse proxy at that address fronts the hub, list it in Hub:TrustedProxies; "
        + "otherwise a client is trying to choose its own address. Said once.")]
    private static partial void LogUntrustedForwarded(ILogger logger, string address);
}
