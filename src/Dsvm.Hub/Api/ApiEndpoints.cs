using System.Security.Claims;
using System.Text.Json;
using Dsvm.Core;
using Dsvm.Core.Workspaces;
using Dsvm.Hub.Auth;
using Dsvm.Hub.Data;
using Dsvm.Hub.Proxy;
using Dsvm.Hub.Services;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace Dsvm.Hub.Api;

/// <summary>The REST API under <c>/api/v1</c>.</summary>
public static class ApiEndpoints
{
    public const string ReadPolicy = "read";
    public const string WorkspacesPolicy = "workspaces";
    public const string AdminPolicy = "admin";

    public static void Map(IEndpointRouteBuilder app)
    {
        var api = app.MapGroup("/api/v1").WithTags("OpenDSVM");
        MapAccounts(api);
        MapCatalog(api);
        MapWorkspaces(api);
        MapClasses(api);
    }

    private static async Task<HubUser> CurrentAsync(ClaimsPrincipal p, Accounts accounts, CancellationToken ct) =>
        await accounts.FindUserAsync(p.Name(), ct) ?? throw new ForbiddenException("this account no longer exists");

    private static void CheckAccess(ClaimsPrincipal p, string owner)
    {
        if (p.Name() != owner && !p.IsAdmin())
        {
            // Not "forbidden": someone else's workspace does not exist as far as this caller is concerned.
            throw new NotFoundException("no such workspace");
        }
    }

    private static void MapAccounts(RouteGroupBuilder api)
    {
        api.MapPost("/login", async (LoginRequest body, HttpContext http, Accounts accounts, LoginThrottle throttle, HubOptions options, CancellationToken ct) =>
        {
            throttle.ThrowIfBlocked(body.Name, http.Connection.RemoteIpAddress);
            var user = await accounts.VerifyPasswordAsync(body.Name, body.Password, ct);
            if (user is null)
            {
                throttle.Failed(body.Name, http.Connection.RemoteIpAddress);
                return Results.Problem(statusCode: StatusCodes.Status401Unauthorized, title: "unauthorized", detail: "wrong user name or password");
            }

            throttle.Succeeded(body.Name, http.Connection.RemoteIpAddress);
            if (!LoginPage.PasswordLoginAllowed(options, user))
            {
                throw new ForbiddenException(LoginPage.AdminsOnly(options));
            }

            await http.SignInAsync(HubClaims.CookieScheme, HubClaims.Principal(user, HubClaims.SessionScopes(user), HubClaims.CookieScheme));
            return Results.Ok(UserDto.From(user));
        }).AllowAnonymous().WithSummary("Log in with a password; sets the session cookie (browsers)");

        api.MapPost("/logout", async (HttpContext http) =>
        {
            await http.SignOutAsync(HubClaims.CookieScheme);
            http.Response.Cookies.Delete(HubClaims.CsrfCookie);
            return Results.NoContent();
        }).AllowAnonymous();

        api.MapGet("/me", async (ClaimsPrincipal p, Accounts accounts, CancellationToken ct) =>
            UserDto.From(await CurrentAsync(p, accounts, ct))).RequireAuthorization(ReadPolicy);

        api.MapPost("/me/password", async (PasswordRequest body, ClaimsPrincipal p, Accounts accounts, CancellationToken ct) =>
        {
            await accounts.SetPasswordAsync(p.Name(), body.Password, ct);
            return Results.NoContent();
        }).RequireAuthorization(WorkspacesPolicy);

        var users = api.MapGroup("/users").RequireAuthorization(AdminPolicy);
        users.MapGet("/", async (Accounts accounts, CancellationToken ct) => (await accounts.ListUsersAsync(ct)).Select(UserDto.From));
        users.MapPost("/", async (CreateUserRequest body, Accounts accounts, CancellationToken ct) =>
        {
            var u = await accounts.CreateUserAsync(body.Name, body.Password, body.Admin, null, ct);
            return Results.Created($"/api/v1/users/{u.Name}", UserDto.From(u));
        });
        users.MapDelete("/{name}", async (string name, Accounts accounts, CancellationToken ct) =>
        {
            await accounts.DeleteUserAsync(name, ct);
            return Results.NoContent();
        });
        users.MapPut("/{name}/quota", async (string name, JsonElement body, Accounts accounts, CancellationToken ct) =>
            UserDto.From(await accounts.SetQuotaAsync(name, QuotaJson.Parse(body, patch: false), ct)))
            .WithSummary("Set a user's whole quota: a field left out goes back to the hub's default; null or \"unlimited\" is unlimited");
        users.MapPatch("/{name}/quota", async (string name, JsonElement body, Accounts accounts, CancellationToken ct) =>
            UserDto.From(await accounts.SetQuotaAsync(name, QuotaJson.Parse(body, patch: true), ct)))
            .WithSummary("Change some of a user's quota fields: null or \"unlimited\" is unlimited, \"default\" the hub's default");

        var tokens = api.MapGroup("/tokens");
        tokens.MapGet("/", async (ClaimsPrincipal p, Accounts accounts, CancellationToken ct) =>
            await accounts.ListTokensAsync(await CurrentAsync(p, accounts, ct), ct)).RequireAuthorization(ReadPolicy);
        tokens.MapPost("/", async (CreateTokenRequest body, ClaimsPrincipal p, Accounts accounts, CancellationToken ct) =>
        {
            var user = await CurrentAsync(p, accounts, ct);
            var scopes = body.Scopes ?? [Scopes.Read, Scopes.Workspaces];
            // A token can never carry more than the credentials that made it.
            if (scopes.Any(s => !p.Has(s)))
            {
                throw new ForbiddenException("a token cannot have scopes its creator's credentials lack");
            }

            var (secret, info) = await accounts.CreateTokenAsync(user, body.Name, scopes,
                body.ExpiresInDays is { } d ? TimeSpan.FromDays(d) : null, ct);
            return Results.Created($"/api/v1/tokens/{info.Id}", new CreatedToken(secret, info));
        }).RequireAuthorization(WorkspacesPolicy);
        tokens.MapDelete("/{id}", async (string id, ClaimsPrincipal p, Accounts accounts, CancellationToken ct) =>
        {
            await accounts.RevokeTokenAsync(await CurrentAsync(p, accounts, ct), id, ct);
            return Results.NoContent();
        }).RequireAuthorization(WorkspacesPolicy);
    }

    private static void MapCatalog(RouteGroupBuilder api)
    {
        api.MapGet("/environments", async (IEnvironmentCatalog catalog, CancellationToken ct) =>
            (await catalog.ListAsync(ct)).Select(e => new { e.Name, e.Description, gpu = e.Gpu.ToString().ToLowerInvariant(), e.SizeBytes }))
            .RequireAuthorization(ReadPolicy);
        api.MapGet("/sizes", (HubWorkspaces hub) =>
            hub.Sizes.All.Select(s => new { s.Name, s.Vcpus, s.MemoryGiB, s.Gpus, @class = s.Class.ToString().ToLowerInvariant(), s.Description }))
            .RequireAuthorization(ReadPolicy);
    }

    private static void MapWorkspaces(RouteGroupBuilder api)
    {
        var ws = api.MapGroup("/workspaces");
        ws.MapGet("/", async (ClaimsPrincipal p, HubWorkspaces hub, WorkspaceOrigins origins, HttpContext http, bool? all, CancellationToken ct) =>
        {
            if (all == true && !p.IsAdmin())
            {
                throw new ForbiddenException("only admins can list every workspace");
            }

            return (await hub.ListAsync(all == true ? null : p.Name(), ct)).Select(w => WorkspaceDto.From(w, origins.UrlFor(w, http.Request)));
        }).RequireAuthorization(ReadPolicy);

        ws.MapGet("/{owner}/{name}", async (string owner, string name, ClaimsPrincipal p, HubWorkspaces hub, WorkspaceOrigins origins, HttpContext http, CancellationToken ct) =>
        {
            CheckAccess(p, owner);
            var w = await hub.GetAsync(owner, name, ct);
            return WorkspaceDto.From(w, origins.UrlFor(w, http.Request));
        }).RequireAuthorization(ReadPolicy);

        ws.MapPost("/", async (StartWorkspaceRequest body, bool? wait, HttpContext http, ClaimsPrincipal p, Accounts accounts, HubWorkspaces hub, CancellationToken ct) =>
        {
            var user = await CurrentAsync(p, accounts, ct);
            var w = await hub.BeginStartAsync(user, body.Name, body.Environment ?? "datascience", body.Size ?? Dsvm.Core.Sizes.SizeCatalog.DefaultSize, ct);
            return await Answer(http, hub, user.Name, body.Name, w, wait == true, ct);
        }).RequireAuthorization(WorkspacesPolicy).WithSummary("Start a new workspace: 202 while it starts (poll Location or watch /events); ?wait=true answers when it is ready");

        ws.MapPost("/{owner}/{name}/start", async (string owner, string name, bool? wait, HttpContext http, ClaimsPrincipal p, Accounts accounts, HubWorkspaces hub, CancellationToken ct) =>
        {
            CheckAccess(p, owner);
            var w = await hub.BeginRestartAsync(await CurrentAsync(p, accounts, ct), owner, name, null, ct);
            return await Answer(http, hub, owner, name, w, wait == true, ct);
        }).RequireAuthorization(WorkspacesPolicy);

        ws.MapPost("/{owner}/{name}/resize", async (string owner, string name, ResizeRequest body, bool? wait, HttpContext http, ClaimsPrincipal p, Accounts accounts, HubWorkspaces hub, CancellationToken ct) =>
        {
            CheckAccess(p, owner);
            var w = await hub.BeginRestartAsync(await CurrentAsync(p, accounts, ct), owner, name, body.Size, ct);
            return await Answer(http, hub, owner, name, w, wait == true, ct);
        }).RequireAuthorization(WorkspacesPolicy);

        ws.MapPost("/{owner}/{name}/stop", async (string owner, string name, ClaimsPrincipal p, HubWorkspaces hub, WorkspaceOrigins origins, HttpContext http, CancellationToken ct) =>
        {
            CheckAccess(p, owner);
            var w = await hub.StopAsync(owner, name, ct);
            return WorkspaceDto.From(w, origins.UrlFor(w, http.Request));
        }).RequireAuthorization(WorkspacesPolicy);

        ws.MapDelete("/{owner}/{name}", async (string owner, string name, bool? deleteHome, ClaimsPrincipal p, HubWorkspaces hub, CancellationToken ct) =>
        {
            CheckAccess(p, owner);
            await hub.DeleteAsync(owner, name, deleteHome == true, ct);
            return Results.NoContent();
        }).RequireAuthorization(WorkspacesPolicy);

        ws.MapGet("/{owner}/{name}/logs", async (string owner, string name, int? tail, ClaimsPrincipal p, HubWorkspaces hub, CancellationToken ct) =>
        {
            CheckAccess(p, owner);
            return Results.Text(await hub.LogsAsync(owner, name, tail ?? 100, ct), "text/plain; charset=utf-8");
        }).RequireAuthorization(ReadPolicy).WithSummary("The last lines (?tail=N, default 100) of the workspace server's log, as text");

        ws.MapPost("/{owner}/{name}/exec", async (string owner, string name, ExecRequest body, ClaimsPrincipal p, HubWorkspaces hub, CancellationToken ct) =>
        {
            CheckAccess(p, owner);
            var timeout = body.TimeoutSeconds is { } secs ? TimeSpan.FromSeconds(secs) : (TimeSpan?)null;
            return ExecResult.From(await hub.ExecAsync(owner, name, body.Command ?? [], timeout, ct));
        }).RequireAuthorization(WorkspacesPolicy)
            .WithSummary("Run a command (no shell, no terminal) in a running workspace as its user; answers exit code, stdout and stderr (capped), 501 when the backend cannot exec");

        api.MapGet("/events", async (HttpContext http, ClaimsPrincipal p, WorkspaceEvents events, IHostApplicationLifetime lifetime, CancellationToken aborted) =>
        {
            // The stream ends when the client goes or the hub stops (else a stop waits for every open stream).
            using var linked = CancellationTokenSource.CreateLinkedTokenSource(aborted, lifetime.ApplicationStopping);
            var ct = linked.Token;
            var me = p.Name();
            var admin = p.IsAdmin();
            using var sub = events.Subscribe(e => e.Owner == me || admin);
            http.Response.Headers.ContentType = "text/event-stream";
            http.Response.Headers.CacheControl = "no-cache";
            http.Response.Headers["X-Accel-Buffering"] = "no";
            await http.Response.WriteAsync(": connected\n\n", ct);
            await http.Response.Body.FlushAsync(ct);
            using var heartbeat = new PeriodicTimer(TimeSpan.FromSeconds(15));
            var next = sub.Reader.WaitToReadAsync(ct).AsTask();
            var tick = heartbeat.WaitForNextTickAsync(ct).AsTask();
            try
            {
                while (!ct.IsCancellationRequested)
                {
                    var done = await Task.WhenAny(next, tick);
                    if (done == tick)
                    {
                        await http.Response.WriteAsync(": keep-alive\n\n", ct);
                        tick = heartbeat.WaitForNextTickAsync(ct).AsTask();
                    }
                    else
                    {
                        if (!await next)
                        {
                            break;
                        }

                        while (sub.Reader.TryRead(out var e))
                        {
                            var json = JsonSerializer.Serialize(new { e.Owner, e.Name, state = e.State.ToString().ToLowerInvariant(), e.Message, e.At }, JsonSerializerOptions.Web);
                            await http.Response.WriteAsync($"event: workspace\ndata: {json}\n\n", ct);
                        }

                        next = sub.Reader.WaitToReadAsync(ct).AsTask();
                    }

                    await http.Response.Body.FlushAsync(ct);
                }
            }
            catch (OperationCanceledException) when (lifetime.ApplicationStopping.IsCancellationRequested && !aborted.IsCancellationRequested)
            {
                // The hub is stopping: end the response; clients reconnect to the next hub.
            }
        }).RequireAuthorization(ReadPolicy).WithSummary("Server-Sent Events: workspace states and start progress");
    }

    private static void MapClasses(RouteGroupBuilder api)
    {
        var classes = api.MapGroup("/classes").RequireAuthorization(AdminPolicy);
        classes.MapPost("/", async (CreateClassRequest body, HubClasses hub, CancellationToken ct) =>
        {
            var users = await hub.CreateAsync(body.Name, body.Environment ?? "datascience", body.Size ?? Dsvm.Core.Sizes.SizeCatalog.DefaultSize,
                body.Count, body.Prestart, string.IsNullOrEmpty(body.Prefix) ? null : body.Prefix, ct);
            return Results.Created($"/api/v1/classes/{body.Name}", new CreatedClass(body.Name, users));
        }).WithSummary("Create a class or hackathon: COUNT users PREFIX-01… (group = the class) and, with prestart, a workspace each; passwords are shown only here");

        classes.MapGet("/", (HubClasses hub, CancellationToken ct) => hub.ListAsync(ct));

        classes.MapGet("/{name}/credentials.csv", async (string name, string? csrf, HttpContext http, HubClasses hub, CancellationToken ct) =>
        {
            // This GET changes passwords: from a browser session it must carry the session's CSRF secret (?csrf=), so
            // a link on another site cannot reset a class's passwords.
            if (http.User.Identity?.AuthenticationType == HubClaims.CookieScheme && !http.User.IsCsrfSecret(csrf))
            {
                throw new ForbiddenException("missing or wrong csrf query parameter (the session's CSRF secret, from /hub/csrf)");
            }

            var credentials = await hub.ResetCredentialsAsync(name, ct);
            http.Response.Headers.CacheControl = "no-store";
            http.Response.Headers.ContentDisposition = $"attachment; filename=\"{name}-credentials.csv\"";
            return Results.Text(HubClasses.ToCsv(credentials), "text/csv; charset=utf-8");
        }).WithSummary("Credentials as CSV (user,password,url): every member gets a NEW password at each export");

        classes.MapDelete("/{name}", async (string name, bool? deleteHomes, HubClasses hub, CancellationToken ct) =>
            await hub.DeleteAsync(name, deleteHomes == true, ct))
            .WithSummary("Tear a class down: its members' workspaces (homes kept unless deleteHomes=true) and the members");
    }

    private static WorkspaceDto Dto(HttpContext http, Workspace w) =>
        WorkspaceDto.From(w, http.RequestServices.GetRequiredService<WorkspaceOrigins>().UrlFor(w, http.Request));

    private static async Task<IResult> Answer(HttpContext http, HubWorkspaces hub, string owner, string name, Workspace w, bool wait, CancellationToken ct)
    {
        if (!wait)
        {
            return Results.Accepted($"/api/v1/workspaces/{owner}/{name}", Dto(http, w));
        }

        await hub.WaitAsync(owner, name);
        var final = await hub.GetAsync(owner, name, ct);
        return final.State == WorkspaceState.Running
            ? Results.Ok(Dto(http, final))
            : Results.Problem(statusCode: StatusCodes.Status422UnprocessableEntity, title: "workspace", detail: final.LastError ?? $"the workspace is {final.State}");
    }
}
