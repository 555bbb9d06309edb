using System.Reflection;
using Dsvm.Core;
using Dsvm.Core.Sizes;
using Dsvm.Core.Workspaces;
using Dsvm.Hub.Api;
using Dsvm.Hub.Auth;
using Dsvm.Hub.Data;
using Dsvm.Hub.Proxy;
using Dsvm.Hub.Services;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.DataProtection;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.HttpOverrides;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.FileProviders;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Dsvm.Hub;

/// <summary>What the hub is built from: the engine backend and stores are chosen by whoever hosts it.</summary>
public sealed record HubDependencies
{
    /// <summary>The one backend, when <see cref="Backends"/> is not given.</summary>
    public IWorkspaceBackend? Backend { get; init; }

    /// <summary>The configured backends and their routing per size (backends.yaml); wins over <see cref="Backend"/>.</summary>
    public WorkspaceBackends? Backends { get; init; }
    public required IWorkspaceStore Store { get; init; }
    public required IGpuDetector Gpus { get; init; }
    public required IEnvironmentCatalog Environments { get; init; }
    public required DsvmPaths Paths { get; init; }
    public IReadinessProbe Probe { get; init; } = new HttpReadinessProbe();
    public SizeCatalog Sizes { get; init; } = SizeCatalog.Load(null);
    public TimeProvider Time { get; init; } = TimeProvider.System;

    /// <summary>Accounts database; SQLite <c>hub.db</c> in the data folder when not given.</summary>
    public DbContextOptions<HubDbContext>? AccountsDb { get; init; }

    public WorkspaceOptions WorkspaceOptions { get; init; } = new();
}

/// <summary>Builds the hub's web application: API, login, web UI, proxy and background services.</summary>
public static partial class HubHost
{
    public static WebApplication Build(HubOptions options, HubDependencies deps, Action<ILoggingBuilder>? logging = null)
    {
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { ContentRootPath = AppContext.BaseDirectory });
        builder.WebHost.UseUrls(options.Listen);
        builder.WebHost.ConfigureKestrel(k => k.AddServerHeader = false);
        if (logging is not null)
        {
            builder.Logging.ClearProviders();
            logging(builder.Logging);
        }

        if (!options.RequestLogging)
        {
            // ASP.NET Core's hosting, routing and result loggers and YARP write several lines per request at
            // Information: off unless Hub:RequestLogging is set (warnings and errors still show).
            builder.Logging.AddFilter("Microsoft.AspNetCore", LogLevel.Warning);
            builder.Logging.AddFilter("Yarp", LogLevel.Warning);
        }

        var s = builder.Services;
        var accountsDb = deps.AccountsDb ?? global::Dsvm.Data.WorkspaceStores.SqliteOptions<HubDbContext>(Path.Combine(deps.Paths.EnsureCreated().Data, "hub.db"));
        s.AddSingleton(options);
        s.AddSingleton(deps.Time);
        s.AddSingleton(accountsDb);
        var backends = deps.Backends ?? WorkspaceBackends.Only(deps.Backend ?? throw new ArgumentException("a backend is needed", nameof(deps)));
        s.AddSingleton(backends);
        s.AddSingleton(deps.Store);
        s.AddSingleton(deps.Environments);
        s.AddSingleton<WorkspaceNotifications>();
        s.AddSingleton(sp => new WorkspaceManager(backends, deps.Store, deps.Sizes, deps.Gpus, deps.Probe, deps.Paths, deps.Time, deps.WorkspaceOptions,
            sp.GetRequiredService<WorkspaceNotifications>()));
        s.AddSingleton<Accounts>();
        s.AddSingleton<LoginThrottle>();
        s.AddSingleton<WorkspaceEvents>();
        s.AddSingleton<UserActions>();
        s.AddSingleton<RouteTable>();
        s.AddSingleton<HubWorkspaces>();
        s.AddSingleton<HubClasses>();
        s.AddSingleton<WorkspaceProxy>();
        s.AddSingleton<WorkspaceOrigins>();
        s.AddSingleton<ReconcileService>();
        s.AddHostedService(sp => sp.GetRequiredService<ReconcileService>());
        if (options.IdleTimeout > TimeSpan.Zero)
        {
            s.AddHostedService<CullerService>();
        }

        s.AddHttpForwarder();
        s.AddProblemDetails();
        // Binding failures (malformed JSON, wrong types, unparsable query values) become exceptions that ErrorMapping
        // turns into 400 ProblemDetails naming the field, instead of an empty 400.
        s.Configure<Microsoft.AspNetCore.Routing.RouteHandlerOptions>(o => o.ThrowOnBadRequest = true);
        s.AddExceptionHandler<ErrorMapping>();
        s.AddOpenApi();
        s.AddAntiforgery(o => o.Cookie.Name = "dsvm-antiforgery");
        // Session cookies survive hub restarts: the key ring lives with the hub's data, not in the user profile.
        s.AddDataProtection().SetApplicationName("opendsvm-hub")
            .PersistKeysToFileSystem(new DirectoryInfo(Path.Combine(deps.Paths.Data, "hub-keys")));
        s.ConfigureHttpJsonOptions(o => o.SerializerOptions.Converters.Add(new System.Text.Json.Serialization.JsonStringEnumConverter(System.Text.Json.JsonNamingPolicy.KebabCaseLower)));

        var auth = s.AddAuthentication(HubClaims.Scheme)
            .AddPolicyScheme(HubClaims.Scheme, "token or session", o => o.ForwardDefaultSelector = ctx =>
                ctx.Request.Headers.Authorization.Count > 0 ? HubClaims.TokenScheme : HubClaims.CookieScheme)
            .AddScheme<AuthenticationSchemeOptions, TokenAuthenticationHandler>(HubClaims.TokenScheme, null)
            .AddCookie(HubClaims.CookieScheme, o =>
            {
                o.Cookie.Name = HubClaims.CookieName;
                o.Cookie.HttpOnly = true;
                o.Cookie.SameSite = SameSiteMode.Lax;
                o.Cookie.SecurePolicy = CookieSecurePolicy.SameAsRequest;
                o.ExpireTimeSpan = TimeSpan.FromHours(12);
                o.SlidingExpiration = true;
                o.Events.OnRedirectToLogin = ctx => Deny(ctx.HttpContext, StatusCodes.Status401Unauthorized);
                o.Events.OnRedirectToAccessDenied = ctx => Deny(ctx.HttpContext, StatusCodes.Status403Forbidden);
                o.Events.OnValidatePrincipal = HubClaims.ValidateSessionAsync;
                o.Events.OnSigningIn = HubClaims.AddCsrfSecretAsync;
            });
        OidcLogin.Register(auth, options); // OpenID Connect login, when Hub:Oidc:Authority is set
        s.AddAuthorizationBuilder()
            .AddPolicy(ApiEndpoints.ReadPolicy, p => p.RequireAuthenticatedUser().RequireClaim(HubClaims.Scope, Scopes.Read, Scopes.Workspaces, Scopes.Admin))
            .AddPolicy(ApiEndpoints.WorkspacesPolicy, p => p.RequireAuthenticatedUser().RequireClaim(HubClaims.Scope, Scopes.Workspaces, Scopes.Admin))
            .AddPolicy(ApiEndpoints.AdminPolicy, p => p.RequireAuthenticatedUser().RequireRole(HubClaims.AdminRole).RequireClaim(HubClaims.Scope, Scopes.Admin));

        var app = builder.Build();
        // The subscribers of the manager's changes exist from the start, so none is missed (events are replayed from it).
        app.Services.GetRequiredService<RouteTable>();
        app.Services.GetRequiredService<WorkspaceEvents>();
        app.Services.GetRequiredService<HubWorkspaces>();
        app.UseSecurityHeaders();
        UseTrustedProxies(app, options);
        app.UseExceptionHandler();
        app.UseStatusCodePages();

        // The proxy runs first: its requests skip routing, antiforgery and the API's middleware entirely. A workspace's
        // own host (per-workspace origins) is served by the proxy alone: none of the hub's pages or API are there.
        var proxy = app.Services.GetRequiredService<WorkspaceProxy>();
        var actions = app.Services.GetRequiredService<UserActions>();
        var origins = app.Services.GetRequiredService<WorkspaceOrigins>();
        if (!origins.Enabled)
        {
            SingleOriginMode(app.Logger);
        }

        app.Use(async (ctx, next) =>
        {
            if (origins.TryGetWorkspaceHost(ctx.Request.Host, out var workspaceId))
            {
                await proxy.HandleWorkspaceHostAsync(ctx, workspaceId);
                actions.RecordIfAction(ctx);
                return;
            }

            if (ctx.Request.Path.StartsWithSegments("/user", StringComparison.Ordinal))
            {
                await proxy.HandleAsync(ctx);
                actions.RecordIfAction(ctx); // for the idle culler: changes count, polling does not
                return;
            }

            await next(ctx);
        });

        app.UseAuthentication();
        app.Use(CsrfCheck);
        app.UseAuthorization();
        app.UseAntiforgery();

        var ui = new ManifestEmbeddedFileProviderOrFallback(typeof(HubHost).Assembly);
        app.UseStaticFiles(new StaticFileOptions { FileProvider = ui, RequestPath = "/hub/static" });
        app.MapGet("/", () => Results.Redirect("/hub/")).AllowAnonymous();
        app.MapGet("/hub/", async (HttpContext http) =>
        {
            if (!http.Request.Path.Value!.EndsWith('/'))
            {
                return Results.Redirect("/hub/");
            }

            var auth = await http.AuthenticateAsync(HubClaims.Scheme);
            if (!auth.Succeeded)
            {
                return Results.Redirect("/hub/login?next=%2Fhub%2F");
            }

            var file = ui.GetFileInfo("index.html");
            return Results.Stream(file.CreateReadStream(), "text/html; charset=utf-8");
        }).AllowAnonymous();
        // The web UI's copy of the session's CSRF secret (it is not readable from a cookie).
        app.MapGet("/hub/csrf", (HttpContext http) =>
        {
            http.Response.Headers.CacheControl = "no-store";
            return Results.Ok(new { csrf = http.User.FindFirst(HubClaims.CsrfClaim)?.Value ?? "" });
        }).RequireAuthorization(ApiEndpoints.ReadPolicy);
        LoginPage.Map(app);
        OidcLogin.Map(app, options);
        ApiEndpoints.Map(app);
        app.MapOpenApi("/openapi/{documentName}.json").AllowAnonymous();
        app.MapGet("/healthz", (HubWorkspaces hub) => Results.Ok(new { status = "ok", startsInFlight = hub.StartsInFlight })).AllowAnonymous();
        return app;
    }

    /// <summary>Prepares the accounts database and the first admin; returns a generated admin password to print once.</summary>
    public static async Task<string?> InitializeAsync(WebApplication app, CancellationToken ct)
    {
        var accounts = app.Services.GetRequiredService<Accounts>();
        await accounts.InitializeAsync(ct);
        var password = await accounts.EnsureAdminAsync(ct);
        // Records made before IDs: each gets its owner's user ID and a home record that keeps its old volume.
        var ids = (await accounts.ListUsersAsync(ct)).ToDictionary(u => u.Name, u => u.Id, StringComparer.Ordinal);
        await app.Services.GetRequiredService<WorkspaceManager>().AdoptLegacyRecordsAsync(owner => ids.GetValueOrDefault(owner), ct);
        try
        {
            await app.Services.GetRequiredService<ReconcileService>().RunOnceAsync(ct);
        }
        catch (Exception ex) when (ex is EnvironmentNotReadyException || EngineFaults.EngineOf(ex) is not null)
        {
            // A cluster that does not answer yet is no reason to refuse logins: backends connect on first use, and the
            // periodic reconciliation repairs the records and routes once it answers.
            EngineDownAtStart(app.Logger, EngineFaults.Reason(ex));
        }

        return password;
    }

    /// <summary>Believes X-Forwarded-For/-Proto from the configured proxies only (none by default).</summary>
    private static void UseTrustedProxies(WebApplication app, HubOptions options)
    {
        var forwarded = new ForwardedHeadersOptions { ForwardedHeaders = ForwardedHeaders.XForwardedFor | ForwardedHeaders.XForwardedProto };
        forwarded.KnownProxies.Clear();
        forwarded.KnownIPNetworks.Clear();
        foreach (var entry in options.TrustedProxies)
        {
            if (System.Net.IPAddress.TryParse(entry, out var address))
            {
                forwarded.KnownProxies.Add(address);
            }
            else if (System.Net.IPNetwork.TryParse(entry, out var network))
            {
                forwarded.KnownIPNetworks.Add(network);
            }
            else
            {
                throw new UsageException($"Hub:TrustedProxies: '{entry}' is neither an IP address nor a network (a.b.c.d/n)");
            }
        }

        app.UseUntrustedForwardedWarning([.. forwarded.KnownProxies], [.. forwarded.KnownIPNetworks]);
        if (options.TrustedProxies.Count > 0)
        {
            app.UseForwardedHeaders(forwarded);
        }
    }

    private static Task Deny(HttpContext ctx, int status)
    {
        ctx.Response.StatusCode = status;
        return Task.CompletedTask;
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Single-origin mode: Hub:WorkspaceDomain is not set, so every workspace shares the hub's origin and JavaScript running in a workspace can act as its user on the hub. Fine for one person on a laptop; set Hub:WorkspaceDomain (see docs/hub.md) for a shared hub")]
    private static partial void SingleOriginMode(ILogger logger);

    [LoggerMessage(Level = LogLevel.Warning, Message = "workspaces not reconciled at start, an engine does not answer ({Reason}); retried every reconcile interval")]
    private static partial void EngineDownAtStart(ILogger logger, string reason);

    /// <summary>Cookie-authenticated unsafe API calls must send the session's CSRF secret in a header.</summary>
    private static async Task CsrfCheck(HttpContext ctx, RequestDelegate next)
    {
        var unsafeMethod = !(HttpMethods.IsGet(ctx.Request.Method) || HttpMethods.IsHead(ctx.Request.Method) || HttpMethods.IsOptions(ctx.Request.Method));
        if (unsafeMethod
            && ctx.Request.Path.StartsWithSegments("/api/v1", StringComparison.Ordinal)
            && !ctx.Request.Path.StartsWithSegments("/api/v1/login", StringComparison.Ordinal)
            && ctx.User.Identity is { IsAuthenticated: true, AuthenticationType: HubClaims.CookieScheme })
        {
            if (!ctx.User.IsCsrfSecret(ctx.Request.Headers[HubClaims.CsrfHeader].ToString()))
            {
                ctx.Response.StatusCode = StatusCodes.Status403Forbidden;
                await ctx.Response.WriteAsJsonAsync(new { title = "csrf", detail = $"missing or wrong {HubClaims.CsrfHeader} header" });
                return;
            }
        }

        await next(ctx);
    }

    /// <summary>Serves the embedded web UI (wwwroot/*) by file name.</summary>
    private sealed class ManifestEmbeddedFileProviderOrFallback(Assembly assembly) : IFileProvider
    {
        private readonly EmbeddedFileProvider _inner = new(assembly, "Dsvm.Hub.wwwroot");

        public IDirectoryContents GetDirectoryContents(string subpath) => _inner.GetDirectoryContents(subpath);

        public IFileInfo GetFileInfo(string subpath) => _inner.GetFileInfo(subpath);

        public Microsoft.Extensions.Primitives.IChangeToken Watch(string filter) => _inner.Watch(filter);
    }
}
