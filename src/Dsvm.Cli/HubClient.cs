using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Dsvm.Core;
using Dsvm.Hub.Api;
using Dsvm.Hub.Services;

namespace Dsvm.Cli;

/// <summary>
/// The CLI's side of a hub's REST API (<c>/api/v1</c>), authenticated with an API token. Problem answers become the
/// matching <see cref="DsvmException"/>, so the CLI prints one line and exits with the matching code.
/// </summary>
public sealed class HubClient : IDisposable
{
    public const string TokenName = "dsvm-cli";

    private const string CsrfCookie = "dsvm-csrf";
    private const string CsrfHeader = "X-Dsvm-Csrf";

    private readonly HttpClient _http;
    private string? _user;

    public HubClient(RemoteLogin login, HttpMessageHandler? handler = null)
    {
        Login = login;
        _user = login.User;
        _http = new HttpClient(handler ?? new SocketsHttpHandler { UseCookies = false, AllowAutoRedirect = false }, disposeHandler: handler is null)
        {
            BaseAddress = new Uri(login.Hub + "/"),
            Timeout = TimeSpan.FromMinutes(10),
        };
        _http.DefaultRequestHeaders.TryAddWithoutValidation("Authorization", $"token {login.Token}");
    }

    public RemoteLogin Login { get; }

    /// <summary>
    /// Logs in with a password (session cookie + CSRF header), creates an API token for the CLI (with the admin scope
    /// when the user is an admin) and ends the session. Returns what <see cref="RemoteConfig.Save"/> keeps.
    /// </summary>
    public static Task<RemoteLogin> LoginWithPasswordAsync(string url, string user, string password, CancellationToken ct) =>
        LoginWithPasswordAsync(url, user, password, insecure: false, ct);

    /// <summary>As above; <paramref name="insecure"/> allows plain http to another machine.</summary>
    public static async Task<RemoteLogin> LoginWithPasswordAsync(string url, string user, string password, bool insecure, CancellationToken ct)
    {
        var hub = NormalizeUrl(url);
        RequireSecureTransport(hub, insecure);
        var cookies = new CookieContainer();
        using var http = new HttpClient(new SocketsHttpHandler { CookieContainer = cookies, UseCookies = true, AllowAutoRedirect = false })
        {
            BaseAddress = new Uri(hub + "/"),
            Timeout = TimeSpan.FromSeconds(60),
        };
        var answer = await SendAsync(hub, () => http.PostAsJsonAsync("api/v1/login", new { name = user, password }, ct));
        if (answer.StatusCode == HttpStatusCode.Unauthorized)
        {
            throw new ForbiddenException($"wrong user name or password for {user} at {hub}");
        }

        var me = await ReadAsync<UserDto>(answer, ct);
        var csrf = cookies.GetCookies(new Uri(hub + "/")).FirstOrDefault(c => c.Name == CsrfCookie)?.Value ?? "";
        http.DefaultRequestHeaders.Add(CsrfHeader, csrf);
        string[] scopes = me.Admin ? ["read", "workspaces", "admin"] : ["read", "workspaces"];
        var created = await ReadAsync<CreatedToken>(await SendAsync(hub, () => http.PostAsJsonAsync("api/v1/tokens", new { name = TokenName, scopes, password }, ct)), ct);
        try
        {
            await http.PostAsync("api/v1/logout", null, ct);
        }
        catch (HttpRequestException)
        {
            // The session expires by itself.
        }

        return new RemoteLogin(hub, me.Name, created.Token, created.Info.Id);
    }

    /// <summary>Checks a token (GET /api/v1/me) and returns the login to keep.</summary>
    public static Task<RemoteLogin> LoginWithTokenAsync(string url, string token, CancellationToken ct) =>
        LoginWithTokenAsync(url, token, insecure: false, ct);

    /// <summary>As above; <paramref name="insecure"/> allows plain http to another machine.</summary>
    public static async Task<RemoteLogin> LoginWithTokenAsync(string url, string token, bool insecure, CancellationToken ct)
    {
        RequireSecureTransport(NormalizeUrl(url), insecure);
        using var client = new HubClient(new RemoteLogin(NormalizeUrl(url), null, token));
        var me = await client.MeAsync(ct);
        return client.Login with { User = me.Name };
    }

    /// <summary>
    /// A password or token sent over plain http can be read by anyone on the way: only to this machine (loopback), to
    /// an https hub, or when the user says <c>--insecure</c>.
    /// </summary>
    public static void RequireSecureTransport(string url, bool insecure)
    {
        var uri = new Uri(NormalizeUrl(url));
        if (insecure || uri.Scheme == Uri.UriSchemeHttps || uri.IsLoopback)
        {
            return;
        }

        throw new UsageException(
            $"refusing to send credentials in clear text to {uri.Host}: use https://{uri.Authority} (a TLS proxy in front of the hub), or --insecure if the network is trusted");
    }

    public static string NormalizeUrl(string url)
    {
        if (!Uri.TryCreate(url, UriKind.Absolute, out var uri) || (uri.Scheme != Uri.UriSchemeHttp && uri.Scheme != Uri.UriSchemeHttps))
        {
            throw new UsageException($"'{url}' is not a hub address: use http(s)://HOST[:PORT]");
        }

        return uri.GetLeftPart(UriPartial.Path).TrimEnd('/');
    }

    public Task<UserDto> MeAsync(CancellationToken ct) => GetAsync<UserDto>("api/v1/me", ct);

    /// <summary>The logged-in user's name (asked of the hub once when the login came from environment variables).</summary>
    public async Task<string> UserAsync(CancellationToken ct) => _user ??= (await MeAsync(ct)).Name;

    /// <summary>The browser URL of a workspace: through the hub, which asks the browser to log in.</summary>
    public async Task<string> BrowserUrlAsync(string name, CancellationToken ct) => $"{Login.Hub}/user/{await UserAsync(ct)}/{name}/lab";

    public Task<List<WorkspaceDto>> ListAsync(CancellationToken ct) => GetAsync<List<WorkspaceDto>>("api/v1/workspaces", ct);

    /// <summary>Starts a workspace and waits until it runs (or fails: 422).</summary>
    public Task<WorkspaceDto> UpAsync(string name, string environment, string size, CancellationToken ct) =>
        SendAsync<WorkspaceDto>(() => _http.PostAsJsonAsync("api/v1/workspaces?wait=true", new { name, environment, size }, ct), ct);

    public async Task<WorkspaceDto> StopAsync(string name, CancellationToken ct)
    {
        var path = await PathAsync(name, "/stop", ct);
        return await SendAsync<WorkspaceDto>(() => _http.PostAsync(path, null, ct), ct);
    }

    public async Task<WorkspaceDto> StartAsync(string name, CancellationToken ct)
    {
        var path = await PathAsync(name, "/start?wait=true", ct);
        return await SendAsync<WorkspaceDto>(() => _http.PostAsync(path, null, ct), ct);
    }

    public async Task<WorkspaceDto> ResizeAsync(string name, string size, CancellationToken ct)
    {
        var path = await PathAsync(name, "/resize?wait=true", ct);
        return await SendAsync<WorkspaceDto>(() => _http.PostAsJsonAsync(path, new { size }, ct), ct);
    }

    public async Task DeleteAsync(string name, bool deleteHome, CancellationToken ct)
    {
        var path = await PathAsync(name, deleteHome ? "?deleteHome=true" : "", ct);
        await CheckAsync(await SendAsync(Login.Hub, () => _http.DeleteAsync(path, ct)), ct);
    }

    /// <summary>The last lines of the workspace server's log (GET …/logs?tail=N).</summary>
    public async Task<string> LogsAsync(string name, int tail, CancellationToken ct)
    {
        var path = await PathAsync(name, $"/logs?tail={tail.ToString(System.Globalization.CultureInfo.InvariantCulture)}", ct);
        var r = await SendAsync(Login.Hub, () => _http.GetAsync(path, ct));
        await CheckAsync(r, ct);
        return await r.Content.ReadAsStringAsync(ct);
    }

    /// <summary>Runs a command in the workspace (POST …/exec): no terminal, no stdin; output comes back when it ends.</summary>
    public async Task<ExecResult> ExecAsync(string name, IReadOnlyList<string> command, TimeSpan? timeout, CancellationToken ct)
    {
        var path = await PathAsync(name, "/exec", ct);
        int? seconds = timeout is { } t ? (int)Math.Ceiling(t.TotalSeconds) : null;
        return await SendAsync<ExecResult>(() => _http.PostAsJsonAsync(path, new { command, timeoutSeconds = seconds }, ct), ct);
    }

    /// <summary>Revokes this login's token (when its id is known).</summary>
    public async Task RevokeAsync(CancellationToken ct)
    {
        if (Login.TokenId is { } id)
        {
            await CheckAsync(await SendAsync(Login.Hub, () => _http.DeleteAsync($"api/v1/tokens/{Uri.EscapeDataString(id)}", ct)), ct);
        }
    }

    public Task<CreatedClass> CreateClassAsync(string name, string environment, string size, int count, bool prestart, string? prefix, CancellationToken ct) =>
        SendAsync<CreatedClass>(() => _http.PostAsJsonAsync("api/v1/classes", new { name, environment, size, count, prestart, prefix }, ct), ct);

    public Task<List<ClassSummary>> ListClassesAsync(CancellationToken ct) => GetAsync<List<ClassSummary>>("api/v1/classes", ct);

    /// <summary>The class's credentials CSV: every member gets a new password.</summary>
    public async Task<string> ClassCredentialsCsvAsync(string name, CancellationToken ct)
    {
        var r = await SendAsync(Login.Hub, () => _http.GetAsync($"api/v1/classes/{Uri.EscapeDataString(name)}/credentials.csv", ct));
        await CheckAsync(r, ct);
        return await r.Content.ReadAsStringAsync(ct);
    }

    public Task<ClassTeardown> DeleteClassAsync(string name, bool deleteHomes, CancellationToken ct) =>
        SendAsync<ClassTeardown>(() => _http.DeleteAsync($"api/v1/classes/{Uri.EscapeDataString(name)}" + (deleteHomes ? "?deleteHomes=true" : ""), ct), ct);

    /// <summary>Every home on the hub (admins), or only the orphaned ones.</summary>
    public Task<List<HomeDto>> ListHomesAsync(bool orphaned, CancellationToken ct) =>
        GetAsync<List<HomeDto>>("api/v1/homes" + (orphaned ? "?orphaned=true" : ""), ct);

    public Task<HomeDto> ReassignHomeAsync(string id, string user, string? workspace, CancellationToken ct) =>
        SendAsync<HomeDto>(() => _http.PostAsJsonAsync($"api/v1/homes/{Uri.EscapeDataString(id)}/reassign", new ReassignHomeRequest(user, workspace), ct), ct);

    public async Task PurgeHomeAsync(string id, CancellationToken ct) =>
        await CheckAsync(await SendAsync(Login.Hub, () => _http.DeleteAsync($"api/v1/homes/{Uri.EscapeDataString(id)}", ct)), ct);

    private async Task<string> PathAsync(string name, string suffix, CancellationToken ct) =>
        $"api/v1/workspaces/{Uri.EscapeDataString(await UserAsync(ct))}/{Uri.EscapeDataString(name)}{suffix}";

    private async Task<T> GetAsync<T>(string path, CancellationToken ct) => await SendAsync<T>(() => _http.GetAsync(path, ct), ct);

    private async Task<T> SendAsync<T>(Func<Task<HttpResponseMessage>> send, CancellationToken ct) =>
        await ReadAsync<T>(await SendAsync(Login.Hub, send), ct);

    private static async Task<HttpResponseMessage> SendAsync(string hub, Func<Task<HttpResponseMessage>> send)
    {
        try
        {
            return await send();
        }
        catch (HttpRequestException ex)
        {
            throw new EnvironmentNotReadyException($"cannot reach the hub at {hub}: {ex.Message}");
        }
    }

    private static async Task<T> ReadAsync<T>(HttpResponseMessage r, CancellationToken ct)
    {
        await CheckAsync(r, ct);
        return await r.Content.ReadFromJsonAsync<T>(Output.Json, ct)
            ?? throw new DsvmException($"the hub answered {(int)r.StatusCode} with an empty body");
    }

    /// <summary>Turns a problem answer into the matching exception: one clear line, and the CLI's exit code.</summary>
    public static async Task CheckAsync(HttpResponseMessage r, CancellationToken ct)
    {
        if (r.IsSuccessStatusCode)
        {
            return;
        }

        var text = await r.Content.ReadAsStringAsync(ct);
        string? detail = null;
        try
        {
            using var doc = JsonDocument.Parse(text);
            if (doc.RootElement.ValueKind == JsonValueKind.Object)
            {
                detail = (doc.RootElement.TryGetProperty("detail", out var d) && d.ValueKind == JsonValueKind.String ? d.GetString() : null)
                    ?? (doc.RootElement.TryGetProperty("title", out var t) && t.ValueKind == JsonValueKind.String ? t.GetString() : null);
            }
        }
        catch (JsonException)
        {
        }

        var status = (int)r.StatusCode;
        var message = string.IsNullOrWhiteSpace(detail) ? $"the hub answered {status} {r.ReasonPhrase}" : detail;
        throw status switch
        {
            400 => new UsageException(message),
            401 => new EnvironmentNotReadyException("not logged in or token expired: run dsvm login"),
            403 => new ForbiddenException(message),
            404 => new NotFoundException(message),
            409 => new ConflictException(message),
            422 => new WorkspaceStartException(WorkspaceFailure.Backend, message),
            501 => new DsvmException(message),
            429 => TooMany(message, r.Headers.RetryAfter?.Delta ?? TimeSpan.FromSeconds(5)),
            503 => new EnvironmentNotReadyException(message),
            _ => new DsvmException($"the hub answered {status}: {message}"),
        };
    }

    private static TooManyRequestsException TooMany(string message, TimeSpan retryAfter) =>
        new($"{message} (retry after {Math.Max(1, (int)Math.Ceiling(retryAfter.TotalSeconds))} s)", retryAfter);

    public void Dispose() => _http.Dispose();
}
