using System.Collections.Concurrent;
using System.Net.WebSockets;
using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json;
using Dsvm.Core.Sizes;
using Dsvm.Core.Workspaces;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace Dsvm.Bench;

/// <summary>
/// A tiny real HTTP server (Kestrel on 127.0.0.1) standing in for a workspace's Jupyter, after the hub tests' one:
/// <c>{base}api/status</c> answers a 1 KiB JSON only with <c>Authorization: token &lt;token&gt;</c>;
/// <c>{base}api/kernels/{id}/channels</c> is a WebSocket echo (same token rule). The base URL and token are set
/// when the fake backend hands the server to a workspace, so servers can be started ahead of time.
/// </summary>
internal sealed class FakeJupyterServer : IAsyncDisposable
{
    /// <summary>The api/status body: Jupyter's two fields padded to 1 KiB.</summary>
    public static readonly byte[] StatusBody = MakeStatusBody();

    private readonly WebApplication _app;
    private volatile string _baseUrl = "/unassigned/";
    private volatile string _authorization = "token -";

    private FakeJupyterServer(WebApplication app, Uri endpoint)
    {
        _app = app;
        Endpoint = endpoint;
    }

    public Uri Endpoint { get; }

    public string BaseUrl => _baseUrl;

    public static async Task<FakeJupyterServer> StartAsync(CancellationToken ct)
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
        self = new FakeJupyterServer(app, new Uri(app.Urls.First()));
        return self;
    }

    /// <summary>Gives the server to a workspace: its base URL (/user/OWNER/NAME/) and Jupyter token.</summary>
    public void Assign(string baseUrl, string token)
    {
        _authorization = $"token {token}";
        _baseUrl = baseUrl;
    }

    private async Task HandleAsync(HttpContext ctx)
    {
        var path = ctx.Request.Path.Value ?? "";
        var authorized = string.Equals(ctx.Request.Headers.Authorization.ToString(), _authorization, StringComparison.Ordinal);
        var baseUrl = _baseUrl;
        if (!path.StartsWith(baseUrl, StringComparison.Ordinal))
        {
            ctx.Response.StatusCode = StatusCodes.Status404NotFound;
            return;
        }

        var rest = path[baseUrl.Length..];
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

        ctx.Response.StatusCode = StatusCodes.Status404NotFound;
    }

    private static async Task EchoAsync(WebSocket ws, CancellationToken ct)
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

                await ws.SendAsync(buffer.AsMemory(0, result.Count), result.MessageType, result.EndOfMessage, ct);
            }
        }
        catch (Exception ex) when (ex is WebSocketException or OperationCanceledException)
        {
            // The client went away.
        }
    }

    private static byte[] MakeStatusBody()
    {
        var head = """{"started":"2024-01-01T00:00:00.000000Z","last_activity":"2024-01-01T00:00:00.000000Z","connections":0,"kernels":0,"padding":" """;
        var tail = "\"}";
        return Encoding.UTF8.GetBytes(head + new string('x', 1024 - head.Length - tail.Length) + tail);
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
}

/// <summary>
/// A workspace backend whose "containers" are <see cref="FakeJupyterServer"/>s: each start takes a server started
/// ahead of time (see <see cref="PrestartAsync"/>) or starts a new one.
/// </summary>
internal sealed class FakeJupyterBackend : IWorkspaceBackend, IAsyncDisposable
{
    private readonly ConcurrentDictionary<string, FakeJupyterServer> _servers = new(StringComparer.Ordinal);
    private readonly ConcurrentQueue<FakeJupyterServer> _spare = new();
    private readonly ConcurrentDictionary<string, string> _tokens = new(StringComparer.Ordinal);

    public string Name => "fake-jupyter";

    public FakeJupyterServer? ServerFor(string owner, string name) =>
        _servers.Values.FirstOrDefault(s => s.BaseUrl == $"/user/{owner}/{name}/");

    public string TokenFor(string owner, string name) => _tokens[$"{owner}/{name}"];

    /// <summary>Starts servers now, so later workspace starts only hand them out.</summary>
    public async Task PrestartAsync(int count, CancellationToken ct)
    {
        for (var i = 0; i < count; i++)
        {
            _spare.Enqueue(await FakeJupyterServer.StartAsync(ct));
        }
    }

    public async Task<WorkspaceLaunch> StartAsync(WorkspaceStartRequest request, IProgress<WorkspaceProgress>? progress, CancellationToken ct)
    {
        var server = _spare.TryDequeue(out var s) ? s : await FakeJupyterServer.StartAsync(ct);
        server.Assign(request.BaseUrl, request.Token);
        _tokens[$"{request.Owner}/{request.Name}"] = request.Token;
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

    public Task<WorkspaceStatus> GetStatusAsync(WorkspaceHandle handle, CancellationToken ct) =>
        Task.FromResult(_servers.TryGetValue(handle.Id, out var s)
            ? new WorkspaceStatus(true, true, "running", s.Endpoint)
            : new WorkspaceStatus(false, false, "container not found"));

    public Task DeleteAsync(WorkspaceHandle handle, string homeVolume, bool keepHome, CancellationToken ct) => StopAsync(handle, ct);

    public Task<string> GetLogsAsync(WorkspaceHandle handle, int tailLines, CancellationToken ct) => Task.FromResult("");

    public async IAsyncEnumerable<ManagedResource> ListManagedAsync([EnumeratorCancellation] CancellationToken ct)
    {
        foreach (var id in _servers.Keys.ToList())
        {
            await Task.Yield();
            yield return new ManagedResource(id, "c-" + id, true, Handle(id));
        }
    }

    public Task<bool> HomeExistsAsync(string homeVolume, CancellationToken ct) => Task.FromResult(false);

    public Task<HostCapacity> GetCapacityAsync(CancellationToken ct) => Task.FromResult(new HostCapacity(64, 256L * 1024 * 1024 * 1024, 0));

    public async ValueTask DisposeAsync()
    {
        foreach (var id in _servers.Keys.ToList())
        {
            if (_servers.TryRemove(id, out var s))
            {
                await s.DisposeAsync();
            }
        }

        while (_spare.TryDequeue(out var s))
        {
            await s.DisposeAsync();
        }
    }
}

internal sealed class NoGpus : IGpuDetector
{
    public Task<IReadOnlyList<GpuInfo>> DetectAsync(CancellationToken ct) => Task.FromResult<IReadOnlyList<GpuInfo>>([]);
}
