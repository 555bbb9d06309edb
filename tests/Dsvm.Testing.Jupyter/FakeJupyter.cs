using System.Collections.Concurrent;
using System.Net.WebSockets;
using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json;
using Dsvm.Core;
using Dsvm.Core.Sizes;
using Dsvm.Core.Workspaces;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace Dsvm.Testing.Jupyter;

/// <summary>
/// A tiny real HTTP server (Kestrel on 127.0.0.1) standing in for a workspace's Jupyter: <c>{base}api/status</c>
/// answers a 1 KiB JSON only with <c>Authorization: token &lt;token&gt;</c>; <c>{base}api/kernels/{id}/channels</c> is a
/// WebSocket echo (same token rule); anything else under the base URL is echoed back as JSON
/// {method, path, query, authorization, cookie}. The base URL and token are set when the fake backend hands the
/// server to a workspace, so servers can be started ahead of time (<see cref="FakeJupyterBackend.PrestartAsync"/>).
/// </summary>
public sealed class FakeJupyterServer : IAsyncDisposable
{
    /// <summary>The api/status body: Jupyter's fields padded to 1 KiB.</summary>
    public static readonly byte[] StatusBody = MakeStatusBody();

    private readonly WebApplication _app;
    private volatile string _baseUrl = "/unassigned/";
    private volatile string _token = "-";

    private FakeJupyterServer(WebApplication app, Uri endpoint, bool recordRequests)
    {
        _app = app;
        Endpoint = endpoint;
        RecordRequests = recordRequests;
    }

    public Uri Endpoint { get; }

    public string BaseUrl => _baseUrl;

    public string Token => _token;

    /// <summary>Requests it received, as "METHOD path" (only when <see cref="RecordRequests"/>: benchmarks send millions).</summary>
    public ConcurrentQueue<string> Requests { get; } = new();

    public bool RecordRequests { get; }

    /// <summary>Jupyter's activity bookkeeping, when a test turns it on (otherwise api/status answers <see cref="StatusBody"/>).</summary>
    public FakeJupyterActivity? Activity { get; set; }

    /// <summary>When set, <c>{base}lab</c> answers this HTML page, with <c>{token}</c> replaced by the token (as Jupyter's PageConfig has it).</summary>
    public string? LabHtml { get; set; }

    public static async Task<FakeJupyterServer> StartAsync(CancellationToken ct, bool recordRequests = true)
    {
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { ContentRootPath = AppContext.BaseDirectory });
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.WebHost.ConfigureKestrel(k => k.AddServerHeader = false);
        builder.Logging.ClearProviders();
        var app = builder.Build();
        FakeJupyterServer? self = null;
        app.UseWebSockets();
        app.Run(ctx => self!.HandleAsync(ctx));
        await app.StartAsync(ct);
        self = new FakeJupyterServer(app, new Uri(app.Urls.First()), recordRequests);
        return self;
    }

    public static async Task<FakeJupyterServer> StartAsync(string baseUrl, string token, CancellationToken ct)
    {
        var server = await StartAsync(ct);
        server.Assign(baseUrl, token);
        return server;
    }

    /// <summary>Gives the server to a workspace: its base URL (/user/OWNER/NAME/) and Jupyter token.</summary>
    public void Assign(string baseUrl, string token)
    {
        _token = token;
        _baseUrl = baseUrl;
    }

    private async Task HandleAsync(HttpContext ctx)
    {
        var path = ctx.Request.Path.Value ?? "";
        if (RecordRequests)
        {
            Requests.Enqueue($"{ctx.Request.Method} {path}");
        }

        var authorization = ctx.Request.Headers.Authorization.ToString();
        var authorized = string.Equals(authorization, $"token {_token}", StringComparison.Ordinal);
        var baseUrl = _baseUrl;
        if (!path.StartsWith(baseUrl, StringComparison.Ordinal))
        {
            ctx.Response.StatusCode = StatusCodes.Status404NotFound;
            return;
        }

        var rest = path[baseUrl.Length..];
        if (Activity is { } activity && authorized && await activity.HandleAsync(ctx, rest))
        {
            return;
        }

        if (rest == "api/status")
        {
            ctx.Response.StatusCode = authorized ? StatusCodes.Status200OK : StatusCodes.Status403Forbidden;
            if (authorized)
            {
                ctx.Response.ContentType = "application/json";
                ctx.Response.ContentLength = StatusBody.Length;
                await ctx.Response.Body.WriteAsync(StatusBody);
            }

            return;
        }
        if (rest.StartsWith("api/kernels/", StringComparison.Ordinal) && rest.EndsWith("/channels", StringComparison.Ordinal))
        {
            if (!ctx.WebSockets.IsWebSocketRequest || !authorized)
            {
                ctx.Response.StatusCode = authorized ? StatusCodes.Status400BadRequest : StatusCodes.Status403Forbidden;
                return;
            }

            using var ws = await ctx.WebSockets.AcceptWebSocketAsync();
            await EchoAsync(ws, ctx.RequestAborted);
            return;
        }

        // ?set-cookie=… : the answer sets that cookie (what a server in a workspace could send).
        foreach (var setCookie in ctx.Request.Query["set-cookie"])
        {
            ctx.Response.Headers.Append("Set-Cookie", setCookie);
        }

        // files/big-N.html: N bytes of HTML, generated as they are sent (a large file in the home).
        if (rest.StartsWith("files/big-", StringComparison.Ordinal) && rest.EndsWith(".html", StringComparison.Ordinal)
            && long.TryParse(rest["files/big-".Length..^".html".Length], out var size))
        {
            ctx.Response.ContentType = "text/html";
            ctx.Response.ContentLength = size;
            var chunk = Encoding.ASCII.GetBytes(string.Concat(Enumerable.Repeat("<p>big file</p>\n", 4096)));
            for (var sent = 0L; sent < size; sent += chunk.Length)
            {
                await ctx.Response.Body.WriteAsync(chunk.AsMemory(0, (int)Math.Min(chunk.Length, size - sent)), ctx.RequestAborted);
            }

            return;
        }

        if (LabHtml is { } lab && (rest == "lab" || rest.StartsWith("lab/", StringComparison.Ordinal)))
        {
            ctx.Response.ContentType = "text/html; charset=utf-8";
            await ctx.Response.WriteAsync(lab.Replace("{token}", _token, StringComparison.Ordinal));
            return;
        }

        await ctx.Response.WriteAsJsonAsync(new
        {
            method = ctx.Request.Method,
            path,
            query = ctx.Request.QueryString.Value ?? "",
            authorization = authorization.Length == 0 ? null : authorization,
            cookie = ctx.Request.Headers.Cookie.Count == 0 ? null : ctx.Request.Headers.Cookie.ToString(),
        });
    }

    internal static async Task EchoAsync(WebSocket ws, CancellationToken ct, Action? onMessage = null)
    {
        var buffer = new byte[16 * 1024];
        try
        {
            while (ws.State == WebSocketState.Open)
            {
                var result = await ws.ReceiveAsync(buffer, ct);
                if (result.MessageType == WebSocketMessageType.Close)
                {
                    await ws.CloseAsync(WebSocketCloseStatus.NormalClosure, "bye", ct);
                    return;
                }

                onMessage?.Invoke();
                await ws.SendAsync(buffer.AsMemory(0, result.Count), result.MessageType, result.EndOfMessage, ct);
            }
        }
        catch (Exception ex) when (ex is WebSocketException or OperationCanceledException)
        {
            // The client went away.
        }
    }

    public async ValueTask DisposeAsync()
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(5));
        try
        {
            await _app.StopAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
        }

        await _app.DisposeAsync();
    }

    private static byte[] MakeStatusBody()
    {
        var head = """{"started":"2024-01-01T00:00:00.000000Z","last_activity":"2024-01-01T00:00:00.000000Z","connections":0,"kernels":0,"padding":" """;
        var tail = "\"}";
        return Encoding.UTF8.GetBytes(head + new string('x', 1024 - head.Length - tail.Length) + tail);
    }
}

/// <summary>
/// A workspace backend whose "containers" are <see cref="FakeJupyterServer"/>s. They live in the backend, not the
/// hub, so a hub can stop and another start while the workspaces keep running (as containers would). Each start
/// takes a server started ahead of time (<see cref="PrestartAsync"/>) or starts a new one.
/// </summary>
public sealed class FakeJupyterBackend : IWorkspaceBackend, IWorkspaceExec, IAsyncDisposable
{
    private readonly ConcurrentDictionary<string, FakeJupyterServer> _servers = new(StringComparer.Ordinal);

    public string Name => "fake-jupyter";

    public HostCapacity Capacity { get; set; } = new(16, 64L * 1024 * 1024 * 1024, 0);

    /// <summary>When set, every start waits for it (to hold starts in flight).</summary>
    public TaskCompletionSource? StartGate { get; set; }

    /// <summary>Every start request, in order (holds the workspace tokens the hub must never show).</summary>
    public ConcurrentQueue<WorkspaceStartRequest> Starts { get; } = new();

    public FakeJupyterServer? ServerFor(string owner, string name) =>
        _servers.Values.FirstOrDefault(s => s.BaseUrl == $"/user/{owner}/{name}/");

    public string TokenFor(string owner, string name) =>
        Starts.Last(s => s.Owner == owner && s.Name == name).Token;

    /// <summary>The page servers answer at <c>{base}lab</c> (see <see cref="FakeJupyterServer.LabHtml"/>); null: the JSON echo.</summary>
    public string? LabHtml { get; set; }

    /// <summary>Servers record the requests they get (off for benchmarks).</summary>
    public bool RecordRequests { get; init; } = true;

    private readonly ConcurrentQueue<FakeJupyterServer> _spare = new();

    /// <summary>When set, every server started from now on keeps Jupyter's activity bookkeeping on this clock.</summary>
    public TimeProvider? ActivityClock { get; set; }

    /// <summary>Starts servers now, so later workspace starts only hand them out.</summary>
    public async Task PrestartAsync(int count, CancellationToken ct)
    {
        for (var i = 0; i < count; i++)
        {
            _spare.Enqueue(await FakeJupyterServer.StartAsync(ct, RecordRequests));
        }
    }

    public async Task<WorkspaceLaunch> StartAsync(WorkspaceStartRequest request, IProgress<WorkspaceProgress>? progress, CancellationToken ct)
    {
        Starts.Enqueue(request);
        progress?.Report(new WorkspaceProgress("fake: starting a Jupyter"));
        if (StartGate is { } gate)
        {
            await gate.Task.WaitAsync(ct);
        }

        var server = _spare.TryDequeue(out var spare) ? spare : await FakeJupyterServer.StartAsync(ct, RecordRequests);
        server.Assign(request.BaseUrl, request.Token);
        server.Activity = ActivityClock is { } clock ? new FakeJupyterActivity(clock) : null;
        server.LabHtml = LabHtml;
        if (_servers.TryRemove(request.Id, out var old))
        {
            await old.DisposeAsync();
        }

        _servers[request.Id] = server;
        return new WorkspaceLaunch(Handle(request.Id), server.Endpoint);
    }

    private WorkspaceHandle Handle(string id) => new(id, Name, JsonSerializer.SerializeToElement(new { container = "c-" + id }));

    public async Task StopAsync(WorkspaceHandle handle, CancellationToken ct)
    {
        if (_servers.TryRemove(handle.Id, out var server))
        {
            await server.DisposeAsync();
        }
    }

    private int _engineReads;

    /// <summary>How often the engine was asked about workspaces (status inspects and label scans).</summary>
    public int EngineReads => Volatile.Read(ref _engineReads);

    public Task<WorkspaceStatus> GetStatusAsync(WorkspaceHandle handle, CancellationToken ct)
    {
        Interlocked.Increment(ref _engineReads);
        return Task.FromResult(_servers.TryGetValue(handle.Id, out var s)
            ? new WorkspaceStatus(true, true, "running", s.Endpoint)
            : new WorkspaceStatus(false, false, "container not found"));
    }

    /// <summary>Every delete, in order: the home volume and whether the hub asked to keep it.</summary>
    public ConcurrentQueue<(string HomeVolume, bool KeepHome)> Deletes { get; } = new();

    public Task DeleteAsync(WorkspaceHandle handle, string homeVolume, bool keepHome, CancellationToken ct)
    {
        Deletes.Enqueue((homeVolume, keepHome));
        return StopAsync(handle, ct);
    }

    /// <summary>Ten log lines, the first printing the server's URL with its token (as Jupyter does); the last N of them.</summary>
    public Task<string> GetLogsAsync(WorkspaceHandle handle, int tailLines, CancellationToken ct)
    {
        var server = _servers.TryGetValue(handle.Id, out var s) ? s : null;
        if (server is null)
        {
            return Task.FromResult("");
        }

        var lines = new[] { $"[I] Jupyter Server is running at http://127.0.0.1:8888{server.BaseUrl}lab?token={server.Token}" }
            .Concat(Enumerable.Range(2, 9).Select(i => $"[I] log line {i}"));
        return Task.FromResult(string.Join('\n', lines.TakeLast(tailLines)));
    }

    /// <summary>Every exec request, in order.</summary>
    public ConcurrentQueue<WorkspaceExecRequest> Execs { get; } = new();

    /// <summary>What an exec answers; by default the command echoed on stdout, exit code 0.</summary>
    public Func<WorkspaceExecRequest, WorkspaceExecResult> ExecHandler { get; set; } =
        r => new WorkspaceExecResult(0, string.Join(' ', r.Command) + "\n", "", false, false);

    public Task<WorkspaceExecResult> ExecAsync(WorkspaceHandle handle, WorkspaceExecRequest request, CancellationToken ct)
    {
        if (!_servers.ContainsKey(handle.Id))
        {
            throw new ConflictException("the workspace's server is not running");
        }

        Execs.Enqueue(request);
        return Task.FromResult(ExecHandler(request));
    }

    public async IAsyncEnumerable<ManagedResource> ListManagedAsync([EnumeratorCancellation] CancellationToken ct)
    {
        Interlocked.Increment(ref _engineReads);
        foreach (var id in _servers.Keys.ToList())
        {
            await Task.Yield();
            yield return new ManagedResource(id, "c-" + id, true, Handle(id));
        }
    }

    public Task<bool> HomeExistsAsync(string homeVolume, CancellationToken ct) => Task.FromResult(false);

    public Task<HostCapacity> GetCapacityAsync(CancellationToken ct) => Task.FromResult(Capacity);

    public async ValueTask DisposeAsync()
    {
        StartGate?.TrySetCanceled();
        foreach (var id in _servers.Keys.ToList())
        {
            if (_servers.TryRemove(id, out var s))
            {
                await s.DisposeAsync();
            }
        }

        while (_spare.TryDequeue(out var spare))
        {
            await spare.DisposeAsync();
        }
    }
}

public sealed class NoGpus : IGpuDetector
{
    public Task<IReadOnlyList<GpuInfo>> DetectAsync(CancellationToken ct) => Task.FromResult<IReadOnlyList<GpuInfo>>([]);
}

/// <summary>
/// What jupyter_server 2.x reports about activity, modelled: every API request not marked <c>no_track_activity</c>
/// moves the server's <c>last_activity</c> (so a browser tab polling api/kernels, api/sessions or api/contents keeps
/// it fresh), a kernel's <c>last_activity</c> moves only with its own messages (execution), a terminal's with its
/// input. Kernels and terminals are made by the test; their websockets (<c>api/kernels/ID/channels</c>,
/// <c>terminals/websocket/NAME</c>) echo and count each message as activity.
/// </summary>
public sealed class FakeJupyterActivity(TimeProvider time)
{
    private readonly Lock _gate = new();
    private readonly Dictionary<string, (bool Busy, DateTimeOffset Last)> _kernels = new(StringComparer.Ordinal);
    private readonly Dictionary<string, DateTimeOffset> _terminals = new(StringComparer.Ordinal);
    private DateTimeOffset _apiLast = time.GetUtcNow();

    public DateTimeOffset Started { get; } = time.GetUtcNow();

    public void AddKernel(string id)
    {
        lock (_gate)
        {
            _kernels[id] = (false, time.GetUtcNow());
        }
    }

    /// <summary>A kernel starts (busy) or ends (idle) an execution: both are its messages, so both are activity.</summary>
    public void SetBusy(string id, bool busy)
    {
        lock (_gate)
        {
            _kernels[id] = (busy, time.GetUtcNow());
        }
    }

    public void KernelMessage(string id)
    {
        lock (_gate)
        {
            if (_kernels.TryGetValue(id, out var k))
            {
                _kernels[id] = (k.Busy, time.GetUtcNow());
            }
        }
    }

    public void AddTerminal(string name) => TerminalInput(name);

    public void TerminalInput(string name)
    {
        lock (_gate)
        {
            _terminals[name] = time.GetUtcNow();
        }
    }

    private static string Iso(DateTimeOffset t) => t.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.ffffff'Z'", System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>Answers what it models; false for anything else (the server's default answers).</summary>
    internal async Task<bool> HandleAsync(HttpContext ctx, string rest)
    {
        if (rest.StartsWith("api/", StringComparison.Ordinal) && !ctx.Request.Query.ContainsKey("no_track_activity"))
        {
            lock (_gate)
            {
                _apiLast = time.GetUtcNow();
            }
        }

        object? answer;
        lock (_gate)
        {
            var last = new[] { _apiLast }.Concat(_kernels.Values.Select(k => k.Last)).Concat(_terminals.Values).Max();
            answer = rest switch
            {
                "api/status" => new Dictionary<string, object>
                {
                    ["started"] = Iso(Started), ["last_activity"] = Iso(last), ["connections"] = 0, ["kernels"] = _kernels.Count,
                },
                "api/kernels" => _kernels.Select(k => new Dictionary<string, object>
                {
                    ["id"] = k.Key, ["name"] = "python3", ["last_activity"] = Iso(k.Value.Last),
                    ["execution_state"] = k.Value.Busy ? "busy" : "idle", ["connections"] = 0,
                }).ToList(),
                "api/terminals" => _terminals.Select(t => new Dictionary<string, object> { ["name"] = t.Key, ["last_activity"] = Iso(t.Value) }).ToList(),
                "api/sessions" => Array.Empty<object>(),
                _ => null,
            };
        }

        if (answer is not null)
        {
            await ctx.Response.WriteAsJsonAsync(answer);
            return true;
        }

        var kernelSocket = rest.StartsWith("api/kernels/", StringComparison.Ordinal) && rest.EndsWith("/channels", StringComparison.Ordinal);
        var terminalSocket = rest.StartsWith("terminals/websocket/", StringComparison.Ordinal);
        if ((kernelSocket || terminalSocket) && ctx.WebSockets.IsWebSocketRequest)
        {
            var id = kernelSocket ? rest["api/kernels/".Length..^"/channels".Length] : rest["terminals/websocket/".Length..];
            using var ws = await ctx.WebSockets.AcceptWebSocketAsync();
            await FakeJupyterServer.EchoAsync(ws, ctx.RequestAborted, kernelSocket ? () => KernelMessage(id) : () => TerminalInput(id));
            return true;
        }

        return false;
    }
}
