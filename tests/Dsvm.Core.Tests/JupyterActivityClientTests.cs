using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Dsvm.Core.Workspaces;

namespace Dsvm.Core.Tests;

/// <summary><see cref="HttpJupyterActivityClient"/> against answers as jupyter_server 2.15 writes them.</summary>
public sealed class JupyterActivityClientTests
{
    private const string Token = "0f3c9a1be2d44c6f8a7b5e3d2c1b0a99887766554433221100ffeeddccbbaa99";

    // GET /user/alice/proj/api/status (json.dumps(model, sort_keys=True)).
    private const string Status =
        """{"connections": 1, "kernels": 2, "last_activity": "2025-01-31T08:41:07.123456Z", "started": "2025-01-31T08:00:01.654321Z"}""";

    // GET /user/alice/proj/api/kernels: one kernel executing, one idle since long ago.
    private const string Kernels =
        """
        [{"id": "5c1e2f8a-3b7d-4e0c-9a6f-1d2b3c4e5f60", "name": "python3", "last_activity": "2025-01-31T08:55:12.000123Z",
          "execution_state": "busy", "connections": 1},
         {"id": "9e8d7c6b-5a4f-4e3d-8c2b-1a0f9e8d7c6b", "name": "python3", "last_activity": "2025-01-31T08:12:00Z",
          "execution_state": "idle", "connections": 0}]
        """;

    private static Workspace Workspace(string? endpoint = "http://127.0.0.1:49153/") => new()
    {
        Id = "ws-0123456789ab", Name = "proj", Owner = "alice", Environment = "minimal", Image = "dsvm/minimal:latest", Size = "small",
        Backend = "docker", HomeVolume = "dsvm-home-alice-proj", Token = Token, State = WorkspaceState.Running, Endpoint = endpoint,
    };

    private static async Task<JupyterActivity?> GetAsync(StubHandler stub, Workspace? w = null, CancellationToken ct = default)
    {
        using var http = new HttpClient(stub);
        return await new HttpJupyterActivityClient(http).GetAsync(w ?? Workspace(), ct);
    }

    [Fact]
    public async Task ReadsStatusAndKernelsWithTheTokenUnderTheBaseUrl()
    {
        var stub = new StubHandler(Status, Kernels);

        var a = await GetAsync(stub);

        Assert.NotNull(a);
        // The newest of the server's and the kernels' activity, to the microsecond.
        Assert.Equal(new DateTimeOffset(2025, 1, 31, 8, 55, 12, TimeSpan.Zero).AddTicks(1230), a.LastActivity);
        Assert.Equal(TimeSpan.Zero, a.LastActivity.Offset);
        Assert.Equal(2, a.Kernels);
        Assert.Equal(1, a.BusyKernels);
        Assert.Equal(1, a.Connections);

        Assert.Equal(
            ["http://127.0.0.1:49153/user/alice/proj/api/status", "http://127.0.0.1:49153/user/alice/proj/api/kernels?no_track_activity=1",
                "http://127.0.0.1:49153/user/alice/proj/api/terminals?no_track_activity=1"],
            stub.Requests.Select(r => r.Uri));
        Assert.All(stub.Requests, r =>
        {
            Assert.Equal("GET", r.Method);
            Assert.Equal($"token {Token}", r.Authorization);
            Assert.Null(r.Cookie);
        });
    }

    [Fact]
    public async Task WithoutKernelsOrTerminalsTheServersStartCountsNotItsApiActivity()
    {
        // last_activity moves with every API request (a tab polling api/sessions): not the user's activity.
        var a = await GetAsync(new StubHandler(
            """{"connections": 0, "kernels": 0, "last_activity": "2025-01-31T08:41:07.123456Z", "started": "2025-01-31T08:00:01.654321Z"}""",
            "[]"));

        Assert.Equal(new JupyterActivity(new DateTimeOffset(2025, 1, 31, 8, 0, 1, TimeSpan.Zero).AddTicks(6543210), 0, 0, 0), a);
    }

    [Fact]
    public async Task TheServersApiActivityNeverWinsOverItsKernels()
    {
        var a = await GetAsync(new StubHandler(
            """{"connections": 0, "kernels": 1, "last_activity": "2025-01-31T09:30:00.5Z", "started": "2025-01-31T08:00:01Z"}""",
            """[{"id": "k", "name": "python3", "last_activity": "2025-01-31T08:12:00Z", "execution_state": "starting", "connections": 0}]"""));

        Assert.Equal(new DateTimeOffset(2025, 1, 31, 8, 12, 0, TimeSpan.Zero), a!.LastActivity);
        Assert.Equal(0, a.BusyKernels);
    }

    [Fact]
    public async Task TerminalInputCountsAndServersWithoutTerminalsAreFine()
    {
        var a = await GetAsync(new StubHandler(Status, Kernels, """[{"name": "1", "last_activity": "2025-01-31T09:01:00Z"}]"""));
        Assert.Equal(new DateTimeOffset(2025, 1, 31, 9, 1, 0, TimeSpan.Zero), a!.LastActivity);

        var noTerminals = await GetAsync(new StubHandler(Status, Kernels, null));
        Assert.Equal(new DateTimeOffset(2025, 1, 31, 8, 55, 12, TimeSpan.Zero).AddTicks(1230), noTerminals!.LastActivity);
    }

    [Theory]
    [InlineData("2025-01-31T08:41:07Z", 0L)]
    [InlineData("2025-01-31T08:41:07.123456Z", 1234560L)]
    [InlineData("2025-01-31T08:41:07.1Z", 1000000L)]
    [InlineData("2025-01-31T08:41:07.123456789Z", 1234567L)]
    [InlineData("2025-01-31T08:41:07.123456+00:00", 1234560L)]
    [InlineData("2025-01-31T09:41:07.123456+01:00", 1234560L)]
    [InlineData("2025-01-31T08:41:07.123456", 1234560L)]
    [InlineData(" 2025-01-31T08:41:07z ", 0L)]
    public void TimesAreReadAsUtcWhateverTheirPrecision(string text, long fractionTicks)
    {
        var t = IsoTime.Parse(text, "test");

        Assert.Equal(new DateTimeOffset(2025, 1, 31, 8, 41, 7, TimeSpan.Zero).AddTicks(fractionTicks), t);
        Assert.Equal(TimeSpan.Zero, t.Offset);
    }

    [Theory]
    [InlineData("")]
    [InlineData("yesterday")]
    [InlineData("2025-13-31T08:41:07Z")]
    [InlineData("1738312867")]
    public void AnUnreadableTimeIsAnError(string text)
    {
        var ex = Assert.Throws<InvalidDataException>(() => IsoTime.Parse(text, "api/status last_activity"));
        Assert.Contains("api/status last_activity", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task AnUnreadableAnswerIsAnErrorNeverAnIdleServer()
    {
        await Assert.ThrowsAsync<InvalidDataException>(() => GetAsync(new StubHandler("<html>proxy error</html>", Kernels)));
        await Assert.ThrowsAsync<InvalidDataException>(() => GetAsync(new StubHandler("""{"connections": 0, "kernels": 0}""", "[]")));
        await Assert.ThrowsAsync<InvalidDataException>(() => GetAsync(new StubHandler(Status, """{"kernels": []}""")));
        await Assert.ThrowsAsync<InvalidDataException>(() => GetAsync(new StubHandler(
            Status, """[{"id": "k", "last_activity": "soon", "execution_state": "idle"}]""")));
    }

    [Fact]
    public async Task AnErrorStatusIsAnErrorWithItsCode()
    {
        var ex = await Assert.ThrowsAsync<HttpRequestException>(() => GetAsync(new StubHandler(Status, Kernels) { StatusCode = HttpStatusCode.Forbidden }));

        Assert.Equal(HttpStatusCode.Forbidden, ex.StatusCode);
        Assert.Contains("/user/alice/proj/api/status answered 403", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task AServerThatCannotBeReachedOrDoesNotAnswerInTimeGivesNull()
    {
        Assert.Null(await GetAsync(new StubHandler(Status, Kernels) { Throw = new HttpRequestException("Connection refused (127.0.0.1:49153)") }));
        // HttpClient.Timeout surfaces as a cancellation the caller did not ask for.
        Assert.Null(await GetAsync(new StubHandler(Status, Kernels) { Throw = new TaskCanceledException("timed out", new TimeoutException()) }));
        var noEndpoint = new StubHandler(Status, Kernels);
        Assert.Null(await GetAsync(noEndpoint, Workspace(endpoint: null)));
        Assert.Empty(noEndpoint.Requests);
    }

    [Fact]
    public async Task ANothingListeningPortGivesNull()
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();

        using var http = HttpReadinessProbe.CreateClient();
        Assert.Null(await new HttpJupyterActivityClient(http).GetAsync(Workspace($"http://127.0.0.1:{port}/"), default));
    }

    [Fact]
    public async Task TheCallersCancellationIsNotMistakenForNoAnswer()
    {
        using var cts = new CancellationTokenSource();
        await cts.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => GetAsync(new StubHandler(Status, Kernels), ct: cts.Token));
    }

    /// <summary>Answers api/status, api/kernels and api/terminals (null: 404, terminals off).</summary>
    private sealed class StubHandler(string status, string kernels, string? terminals = "[]") : HttpMessageHandler
    {
        public HttpStatusCode StatusCode { get; init; } = HttpStatusCode.OK;

        public Exception? Throw { get; init; }

        public ConcurrentQueue<(string Method, string Uri, string? Authorization, string? Cookie)> Requests { get; } = new();

        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            cancellationToken.ThrowIfCancellationRequested();
            Requests.Enqueue((request.Method.Method, request.RequestUri!.ToString(), request.Headers.Authorization?.ToString(),
                request.Headers.TryGetValues("Cookie", out var c) ? string.Join(';', c) : null));
            if (Throw is not null)
            {
                throw Throw;
            }

            var path = request.RequestUri.AbsolutePath;
            var body = path.EndsWith("/api/status", StringComparison.Ordinal) ? status
                : path.EndsWith("/api/terminals", StringComparison.Ordinal) ? terminals : kernels;
            return Task.FromResult(new HttpResponseMessage(body is null ? HttpStatusCode.NotFound : StatusCode)
            {
                Content = new StringContent(body ?? "404: Not Found", Encoding.UTF8, "application/json"),
                RequestMessage = request,
            });
        }
    }
}
