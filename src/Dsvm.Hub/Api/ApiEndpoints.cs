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
        MapHomes(api);
    }

    /// <summary>Homes (admins only): orphaned homes of deleted users are listed, reassigned or purged explicitly.</summary>
    private static void MapHomes(RouteGroupBuilder api)
    {
        var homes = api.MapGroup("/homes").RequireAuthorization(AdminPolicy);
        homes.MapGet("/", async (bool? orphaned, IWorkspaceStore store, Accounts accounts, CancellationToken ct) =>
        {
            var users = (await accounts.ListUsersAsync(ct)).ToDictionary(u => u.Id, u => u.Name, StringComparer.Ordinal);
            var inUse = (await store.ListAsync(null, ct)).Where(w => w.HomeId.Length > 0).ToDictionary(w => w.HomeId, w => w.Name, StringComparer.Ordinal);
            return (await store.ListHomesAsync(null, ct))
                .Where(h => orphaned is null || (h.OrphanedAt is not null) == orphaned)
                .Select(h => HomeDto.From(h, users.GetValueOrDefault(h.OwnerId), inUse.GetValueOrDefault(h.Id)));
        }).WithSummary("Every home, or only the orphaned ones (?orphaned=true): homes of deleted users, attached to nobody");
        homes.MapPost("/{id}/reassign", async (string id, ReassignHomeRequest body, Accounts accounts, WorkspaceManager manager, IWorkspaceStore store, CancellationToken ct) =>
        {
            if (string.IsNullOrEmpty(body.User))
            {
                throw new UsageException("user: the user to give the home to is required");
            }

            var user = await accounts.FindUserAsync(body.User, ct) ?? throw new NotFoundException($"no user '{body.User}'");
            var home = await store.GetHomeAsync(id, ct) ?? throw new NotFoundException($"no home '{id}'");
            var moved = await manager.ReassignHomeAsync(home.Id, user.Name, user.Id, body.Workspace ?? home.Name, ct);
            return HomeDto.From(moved, user.Name, null);
        }).WithSummary("Give a home to a user, attached to their workspace of that name (default: the home's old name)");
        homes.MapDelete("/{id}", async (string id, WorkspaceManager manager, CancellationToken ct) =>
        {
            await manager.PurgeHomeAsync(id, ct);
            return Results.NoContent();
        }).WithSummary("Delete a home that no workspace uses, with all its files");
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
        api.MapPost("/login", async (LoginRequest? body, HttpContext http, Accounts accounts, LoginThrottle throttle, HubOptions options, CancellationToken ct) =>
        {
            body = Fields.Required(body, "body");
            var name = Fields.Text(body.Name, "name");
            var password = Fields.Text(body.Password, "password");
            throttle.ThrowIfBlocked(name, http.Connection.RemoteIpAddress);
            var user = await accounts.VerifyPasswordAsync(name, password, ct);
            if (user is null)
            {
                throttle.Failed(name, http.Connection.RemoteIpAddress);
                return Results.Problem(statusCode: StatusCodes.Status401Unauthorized, title: "unauthorized", detail: "wrong user name or password");
            }

            throttle.Succeeded(name, http.Connection.RemoteIpAddress);
            if (!LoginPage.PasswordLoginAllowed(options, user))
            {
                throw new ForbiddenException(LoginPage.AdminsOnly(options));
            }

            await http.SignInAsync(HubClaims.CookieScheme, await HubClaims.SessionPrincipalAsync(user, accounts, ct));
            return Results.Ok(UserDto.From(user));
        }).AllowAnonymous().WithSummary("Log in with a password; sets the session cookie (browsers)");

        api.MapPost("/logout", async (HttpContext http, Accounts accounts) =>
        {
            await EndSessionAsync(http, accounts);
            http.Response.Cookies.Delete(HubClaims.CsrfCookie);
            return Results.NoContent();
        }).AllowAnonymous().WithSummary("End this browser session (its cookie stops working everywhere, copies included)");

        api.MapGet("/me", async (ClaimsPrincipal p, Accounts accounts, CancellationToken ct) =>
            UserDto.From(await CurrentAsync(p, accounts, ct))).RequireAuthorization(ReadPolicy);

        api.MapPost("/me/password", async (PasswordRequest? body, HttpContext http, ClaimsPrincipal p, Accounts accounts, LoginThrottle throttle, CancellationToken ct) =>
        {
            body = Fields.Required(body, "body");
            var password = Fields.Text(body.Password, "password");
            await ConfirmPasswordAsync(http, p, accounts, throttle, body.CurrentPassword, "currentPassword", ct);
            await accounts.SetPasswordAsync(p.Name(), password, p.Session(), ct);
            return Results.NoContent();
        }).RequireAuthorization(WorkspacesPolicy)
            .WithSummary("Change one's password (currentPassword is needed); every other session of the user ends");

        var users = api.MapGroup("/users").RequireAuthorization(AdminPolicy);
        users.MapGet("/", async (Accounts accounts, CancellationToken ct) => (await accounts.ListUsersAsync(ct)).Select(UserDto.From));
        users.MapPost("/", async (CreateUserRequest? body, Accounts accounts, CancellationToken ct) =>
        {
            body = Fields.Required(body, "body");
            var u = await accounts.CreateUserAsync(Fields.Text(body.Name, "name", 40), Fields.Text(body.Password, "password"), body.Admin, null, ct);
            return Results.Created($"/api/v1/users/{u.Name}", UserDto.From(u));
        });
        users.MapDelete("/{name}", async (string name, Accounts accounts, HubWorkspaces hub, CancellationToken ct) =>
        {
            var user = await accounts.FindUserAsync(name, ct) ?? throw new NotFoundException($"no user '{name}'");
            await hub.RemoveUserAsync(user, purgeHomes: false, ct);
            await accounts.DeleteUserAsync(name, ct);
            return Results.NoContent();
        }).WithSummary("Delete a user: their workspaces stop and go; their homes are kept as orphaned homes (see /homes)");
        users.MapPut("/{name}/quota", async (string name, JsonElement body, Accounts accounts, CancellationToken ct) =>
            UserDto.From(await accounts.SetQuotaAsync(name, QuotaJson.Parse(body, patch: false), ct)))
            .WithSummary("Set a user's whole quota: a field left out goes back to the hub's default; null or \"unlimited\" is unlimited");
        users.MapPatch("/{name}/quota", async (string name, JsonElement body, Accounts accounts, CancellationToken ct) =>
            UserDto.From(await accounts.SetQuotaAsync(name, QuotaJson.Parse(body, patch: true), ct)))
            .WithSummary("Change some of a user's quota fields: null or \"unlimited\" is unlimited, \"default\" the hub's default");

        var tokens = api.MapGroup("/tokens");
        tokens.MapGet("/", async (ClaimsPrincipal p, Accounts accounts, CancellationToken ct) =>
            await accounts.ListTokensAsync(await CurrentAsync(p, accounts, ct), ct)).RequireAuthorization(ReadPolicy);
        tokens.MapPost("/", async (CreateTokenRequest? body, HttpContext http, ClaimsPrincipal p, Accounts accounts, LoginThrottle throttle, CancellationToken ct) =>
        {
            body = Fields.Required(body, "body");
            var name = Fields.Text(body.Name, "name", Accounts.MaxTokenNameLength);
            var scopes = Fields.NoNulls(body.Scopes, "scopes", 10) ?? [Scopes.Read, Scopes.Workspaces];
            var days = Fields.Range(body.ExpiresInDays, "expiresInDays", 1, 366);
            var user = await CurrentAsync(p, accounts, ct);
            // A token can never carry more than the credentials that made it.
            if (scopes.Any(s => !p.Has(s)))
            {
                throw new ForbiddenException("a token cannot have scopes its creator's credentials lack");
            }

            // A browser session proves who is at the keyboard again (script in a page cannot); a token is already the
            // credential a program holds, and makes tokens of at most its own scopes.
            if (p.Session() is not null)
            {
                await ConfirmPasswordAsync(http, p, accounts, throttle, body.Password, "password", ct);
            }

            var (secret, info) = await accounts.CreateTokenAsync(user, name, scopes, days is { } d ? TimeSpan.FromDays(d) : null, ct);
            return Results.Created($"/api/v1/tokens/{info.Id}", new CreatedToken(secret, info));
        }).RequireAuthorization(WorkspacesPolicy)
            .WithSummary("Make an API token (shown once); from a browser session the body's password (the current one) is needed");
        tokens.MapDelete("/{id}", async (string id, ClaimsPrincipal p, Accounts accounts, CancellationToken ct) =>
        {
            await accounts.RevokeTokenAsync(await CurrentAsync(p, accounts, ct), id, ct);
            return Results.NoContent();
        }).RequireAuthorization(WorkspacesPolicy);
    }

    /// <summary>How recent a password-less (single sign-on) session's login must be to stand in for the current password.</summary>
    public static readonly TimeSpan RecentLogin = TimeSpan.FromMinutes(5);

    /// <summary>
    /// The caller's current password, for a sensitive change (password, token from a browser session). Wrong ones
    /// count as failed logins. An account without a password (single sign-on) instead needs a session that logged in
    /// within <see cref="RecentLogin"/> (tokens get 403: such an account sets no password through a token).
    /// </summary>
    private static async Task ConfirmPasswordAsync(HttpContext http, ClaimsPrincipal p, Accounts accounts, LoginThrottle throttle, string? given, string field, CancellationToken ct)
    {
        var name = p.Name();
        if (!await accounts.HasPasswordAsync(name, ct))
        {
            var auth = await http.AuthenticateAsync(HubClaims.CookieScheme);
            var issued = auth.Properties?.IssuedUtc;
            var time = http.RequestServices.GetRequiredService<TimeProvider>();
            if (p.Session() is null || issued is null || time.GetUtcNow() - issued > RecentLogin)
            {
                throw new ForbiddenException("this account has no password: log in again (single sign-on) and retry within 5 minutes");
            }

            return;
        }

        var current = Fields.Text(given, field);
        throttle.ThrowIfBlocked(name, http.Connection.RemoteIpAddress);
        if (!await accounts.CheckPasswordAsync(name, current, ct))
        {
            throttle.Failed(name, http.Connection.RemoteIpAddress);
            throw new ForbiddenException($"{field}: wrong password");
        }
    }

    /// <summary>Ends the caller's browser session, server-side and in the browser.</summary>
    internal static async Task EndSessionAsync(HttpContext http, Accounts accounts)
    {
        var auth = await http.AuthenticateAsync(HubClaims.CookieScheme);
        if (auth.Principal?.FindFirst(HubClaims.SessionId)?.Value is { } session)
        {
            await accounts.EndSessionAsync(session, http.RequestAborted);
        }

        await http.SignOutAsync(HubClaims.CookieScheme);
    }

    private static void MapCatalog(RouteGroupBuilder api)
    {
        api.MapGet("/environments", async (IEnvironmentCatalog catalog, HttpResponse response, CancellationToken ct) =>
        {
            var list = await catalog.ListAsync(ct);
            if (catalog.Problems.Count > 0)
            {
                // The list stays an array (clients read it as one); a source that failed is named in a header.
                response.Headers["Dsvm-Catalog-Problem"] = new string(string.Join("; ", catalog.Problems).Select(c => c is >= ' ' and <= '~' ? c : ' ').ToArray());
            }

            return list.Select(e => new { e.Name, e.Description, gpu = e.Gpu.ToString().ToLowerInvariant(), e.SizeBytes });
        }).RequireAuthorization(ReadPolicy);
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

        ws.MapPost("/", async (StartWorkspaceRequest? body, bool? wait, HttpContext http, ClaimsPrincipal p, Accounts accounts, HubWorkspaces hub, CancellationToken ct) =>
        {
            body = Fields.Required(body, "body");
            var name = Fields.Text(body.Name, "name", 40);
            var environment = Fields.OptionalText(body.Environment, "environment", 100) ?? "datascience";
            var size = Fields.OptionalText(body.Size, "size", 100) ?? Dsvm.Core.Sizes.SizeCatalog.DefaultSize;
            var user = await CurrentAsync(p, accounts, ct);
            var w = await hub.BeginStartAsync(user, name, environment, size, ct);
            return await Answer(http, hub, user.Name, name, w, wait == true, ct);
        }).RequireAuthorization(WorkspacesPolicy).WithSummary("Start a new workspace: 202 while it starts (poll Location or watch /events); ?wait=true answers when it is ready");

        ws.MapPost("/{owner}/{name}/start", async (string owner, string name, bool? wait, HttpContext http, ClaimsPrincipal p, Accounts accounts, HubWorkspaces hub, CancellationToken ct) =>
        {
            CheckAccess(p, owner);
            var w = await hub.BeginRestartAsync(await CurrentAsync(p, accounts, ct), owner, name, null, ct);
            return await Answer(http, hub, owner, name, w, wait == true, ct);
        }).RequireAuthorization(WorkspacesPolicy);

        ws.MapPost("/{owner}/{name}/resize", async (string owner, string name, ResizeRequest? body, bool? wait, HttpContext http, ClaimsPrincipal p, Accounts accounts, HubWorkspaces hub, CancellationToken ct) =>
        {
            var size = Fields.Text(Fields.Required(body, "body").Size, "size", 100);
            CheckAccess(p, owner);
            var w = await hub.BeginRestartAsync(await CurrentAsync(p, accounts, ct), owner, name, size, ct);
            // A workspace that is not running only changes its size: done once recorded, whatever its state.
            return await Answer(http, hub, owner, name, w, wait == true, ct, sizeOnly: w.State != WorkspaceState.Starting);
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
            var lines = Fields.Range(tail, "tail", 0, 100_000) ?? 100;
            return Results.Text(await hub.LogsAsync(owner, name, lines, ct), "text/plain; charset=utf-8");
        }).RequireAuthorization(ReadPolicy).WithSummary("The last lines (?tail=N, default 100) of the workspace server's log, as text");

        ws.MapPost("/{owner}/{name}/exec", async (string owner, string name, ExecRequest? body, ClaimsPrincipal p, HubWorkspaces hub, CancellationToken ct) =>
        {
            body = Fields.Required(body, "body");
            var command = Fields.NoNulls(body.Command, "command") ?? [];
            var timeout = Fields.Range(body.TimeoutSeconds, "timeoutSeconds", 1, 24 * 3600) is { } secs ? TimeSpan.FromSeconds(secs) : (TimeSpan?)null;
            CheckAccess(p, owner);
            return ExecResult.From(await hub.ExecAsync(owner, name, command, timeout, ct));
        }).RequireAuthorization(WorkspacesPolicy)
            .WithSummary("Run a command (no shell, no terminal) in a running workspace as its user; answers exit code, stdout and stderr (capped), 501 when the backend cannot exec");

        api.MapGet("/events", async (HttpContext http, ClaimsPrincipal p, WorkspaceEvents events, IHostApplicationLifetime lifetime, CancellationToken aborted) =>
        {
            // The stream ends when the client goes or the hub stops (else a stop waits for every open stream).
            using var linked = CancellationTokenSource.CreateLinkedTokenSource(aborted, lifetime.ApplicationStopping);
            var ct = linked.Token;
            var me = p.Name();
            var admin = p.IsAdmin();
            // A reconnecting EventSource sends the id of the last event it got; what it missed comes first.
            long? lastEventId = long.TryParse(http.Request.Headers["Last-Event-ID"].ToString(), System.Globalization.NumberStyles.None,
                System.Globalization.CultureInfo.InvariantCulture, out var last) ? last : null;
            using var sub = events.Subscribe(e => e.Owner == me || admin, lastEventId);
            http.Response.Headers.ContentType = "text/event-stream";
            http.Response.Headers.CacheControl = "no-store";
            http.Response.Headers["X-Accel-Buffering"] = "no";
            await http.Response.WriteAsync(": connected\n\n", ct);
            if (sub.Lost)
            {
                // Too old to replay (or from an earlier hub process): the client reloads what it shows.
                await http.Response.WriteAsync("event: reset\ndata: {}\n\n", ct);
            }

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

                        while (sub.Reader.TryRead(out var numbered))
                        {
                            var e = numbered.Event;
                            var json = JsonSerializer.Serialize(new { e.Owner, e.Name, state = e.State.ToString().ToLowerInvariant(), e.Message, e.At }, JsonSerializerOptions.Web);
                            await http.Response.WriteAsync($"id: {numbered.Id}\nevent: workspace\ndata: {json}\n\n", ct);
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
        }).RequireAuthorization(ReadPolicy).WithSummary("Server-Sent Events: workspace states and start progress; each has an id, and Last-Event-ID replays what was missed (or sends `reset`)");
    }

    private static void MapClasses(RouteGroupBuilder api)
    {
        var classes = api.MapGroup("/classes").RequireAuthorization(AdminPolicy);
        classes.MapPost("/", async (CreateClassRequest? body, HttpContext http, HubClasses hub, CancellationToken ct) =>
        {
            body = Fields.Required(body, "body");
            var name = Fields.Text(body.Name, "name", 40);
            var count = Fields.Range(body.Count, "count", 1, HubClasses.MaxMembers) ?? throw new UsageException("count: is required");
            var users = await hub.CreateAsync(name, Fields.OptionalText(body.Environment, "environment", 100) ?? "datascience",
                Fields.OptionalText(body.Size, "size", 100) ?? Dsvm.Core.Sizes.SizeCatalog.DefaultSize,
                count, body.Prestart, string.IsNullOrEmpty(body.Prefix) ? null : Fields.Text(body.Prefix, "prefix", 40), ct);
            http.Response.Headers.CacheControl = "no-store";
            return Results.Created($"/api/v1/classes/{name}", new CreatedClass(name, users));
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

    private static async Task<IResult> Answer(HttpContext http, HubWorkspaces hub, string owner, string name, Workspace w, bool wait, CancellationToken ct,
        bool sizeOnly = false)
    {
        if (!wait)
        {
            return Results.Accepted($"/api/v1/workspaces/{owner}/{name}", Dto(http, w));
        }

        await hub.WaitAsync(owner, name);
        var final = await hub.GetAsync(owner, name, ct);
        return final.State == WorkspaceState.Running || (sizeOnly && final.Size == w.Size)
            ? Results.Ok(Dto(http, final))
            : Results.Problem(statusCode: StatusCodes.Status422UnprocessableEntity, title: "workspace", detail: final.LastError ?? $"the workspace is {final.State}");
    }
}
