using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Dsvm.Core;
using Dsvm.Core.Workspaces;
using Microsoft.Extensions.Time.Testing;

namespace Dsvm.Docker.Tests;

/// <summary>
/// <c>request-timeout</c> of the docker backend: parsed and checked with located errors, and an engine that accepts
/// the connection and never answers (an in-process socket standing in for a hung dockerd) is one not-ready error
/// naming the endpoint and the timeout; stop, which Docker.DotNet gives no timeout, gets its grace period on top.
/// </summary>
public sealed class RequestTimeoutTests : IDisposable
{
    private const string File = "/home/u/.local/share/dsvm/backends.yaml";

    private readonly string _dir = Directory.CreateTempSubdirectory("dsvm-hang-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private sealed class NoGpus : IGpuDetector
    {
        public Task<IReadOnlyList<GpuInfo>> DetectAsync(CancellationToken ct) => Task.FromResult<IReadOnlyList<GpuInfo>>([]);
    }

    private static DockerBackendOptions Parse(string settings)
    {
        var registry = new BackendRegistry().AddDockerBackend(new NoGpus());
        var config = BackendConfig.Parse($"backends:\n  docker:\n    endpoint: unix:///var/run/docker.sock\n{settings}", File, registry);
        return DockerBackendRegistration.Options(Assert.Single(config.Backends));
    }

    [Fact]
    public void Without_the_setting_it_is_30_s() => Assert.Equal(TimeSpan.FromSeconds(30), Parse("").RequestTimeout);

    [Theory]
    [InlineData("3s", 3_000)]
    [InlineData("1.5m", 90_000)]
    [InlineData("500ms", 500)]
    [InlineData("45", 45_000)]
    [InlineData("2h", 7_200_000)]
    public void A_duration_is_read_with_its_unit(string value, int milliseconds) =>
        Assert.Equal(TimeSpan.FromMilliseconds(milliseconds), Parse($"    request-timeout: {value}\n").RequestTimeout);

    [Theory]
    [InlineData("0")]
    [InlineData("0s")]
    [InlineData("-1s")]
    [InlineData("abc")]
    [InlineData("Infinity")]
    [InlineData("NaN")]
    [InlineData("1e3")]
    [InlineData("25h")]
    [InlineData("3 days")]
    public void Anything_but_a_positive_finite_duration_of_at_most_a_day_is_a_located_error(string value)
    {
        var ex = Assert.Throws<SpecValidationException>(() => Parse($"    request-timeout: {value}\n"));
        var error = Assert.Single(ex.Errors).ToString();
        Assert.StartsWith($"{File}:4:22: backends.docker.request-timeout: '{value}' is not a duration above 0", error, StringComparison.Ordinal);
    }

    /// <summary>
    /// A unix socket that accepts every connection and reads the requests; it answers <c>GET …/containers/json</c> with
    /// one container and nothing else, ever (as a frozen dockerd: the kernel accepts, nobody answers).
    /// </summary>
    private sealed class HungEngine : IDisposable
    {
        private readonly Socket _listener = new(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        private readonly List<Socket> _accepted = [];
        private readonly CancellationTokenSource _stop = new();

        public HungEngine(string path)
        {
            _listener.Bind(new UnixDomainSocketEndPoint(path));
            _listener.Listen(16);
            Endpoint = new Uri("unix://" + path);
            _ = AcceptAsync();
        }

        public Uri Endpoint { get; }

        /// <summary>Completed when a request line containing this text has come in.</summary>
        public TaskCompletionSource<string> StopRequested { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        private async Task AcceptAsync()
        {
            while (!_stop.IsCancellationRequested)
            {
                Socket socket;
                try
                {
                    socket = await _listener.AcceptAsync(_stop.Token);
                }
                catch (Exception ex) when (ex is OperationCanceledException or SocketException or ObjectDisposedException)
                {
                    return;
                }

                lock (_accepted)
                {
                    _accepted.Add(socket);
                }

                _ = ServeAsync(socket);
            }
        }

        private async Task ServeAsync(Socket socket)
        {
            var buffer = new byte[64 * 1024];
            var text = new StringBuilder();
            try
            {
                while (true)
                {
                    var read = await socket.ReceiveAsync(buffer, _stop.Token);
                    if (read == 0)
                    {
                        return;
                    }

                    text.Append(Encoding.ASCII.GetString(buffer, 0, read));
                    var head = text.ToString();
                    // Docker.DotNet ends its header lines with a bare \n, the head with \r\n.
                    if (!head.Contains("\n\r\n", StringComparison.Ordinal))
                    {
                        continue;
                    }

                    text.Clear();
                    var line = head[..head.IndexOf('\r', StringComparison.Ordinal)];
                    if (line.Contains("/containers/json", StringComparison.Ordinal))
                    {
                        var body = JsonSerializer.Serialize(new[] { new { Id = "c0ffee", Names = new[] { "/dsvm-ws-0123456789ab" }, Labels = new Dictionary<string, string>() } });
                        await socket.SendAsync(Encoding.ASCII.GetBytes(
                            $"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {body.Length}\r\n\r\n{body}"), _stop.Token);
                    }
                    else if (line.Contains("/stop", StringComparison.Ordinal))
                    {
                        StopRequested.TrySetResult(line);
                    }
                }
            }
            catch (Exception ex) when (ex is OperationCanceledException or SocketException or ObjectDisposedException)
            {
            }
        }

        public void Dispose()
        {
            _stop.Cancel();
            _listener.Dispose();
            lock (_accepted)
            {
                _accepted.ForEach(s => s.Dispose());
            }

            _stop.Dispose();
        }
    }

    private static WorkspaceHandle Handle => new("ws-0123456789ab", "docker", JsonSerializer.SerializeToElement(new { container = "c0ffee" }));

    [Fact]
    public async Task A_hung_engine_is_a_not_ready_error_naming_the_endpoint_and_the_timeout()
    {
        using var engine = new HungEngine(Path.Combine(_dir, "docker.sock"));
        var backend = new DockerWorkspaceBackend(new DockerBackendOptions { Endpoint = engine.Endpoint, RequestTimeout = TimeSpan.FromSeconds(1) }, new NoGpus());

        var ex = await Assert.ThrowsAsync<EnvironmentNotReadyException>(() => backend.GetStatusAsync(Handle, CancellationToken.None));
        Assert.StartsWith($"the Docker engine at {engine.Endpoint} did not answer within 1 s; ", ex.Message, StringComparison.Ordinal);
        Assert.Contains("raise request-timeout for the backend in backends.yaml", ex.Message, StringComparison.Ordinal);
        Assert.DoesNotContain('\n', ex.Message);
        var health = await backend.DescribeAsync(CancellationToken.None);
        Assert.False(health.Healthy);
        Assert.Contains("did not answer within 1 s", health.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_callers_cancellation_stays_a_cancellation()
    {
        using var engine = new HungEngine(Path.Combine(_dir, "docker.sock"));
        var backend = new DockerWorkspaceBackend(new DockerBackendOptions { Endpoint = engine.Endpoint, RequestTimeout = TimeSpan.FromMinutes(5) }, new NoGpus());
        using var cancelled = new CancellationTokenSource();
        await cancelled.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => backend.GetStatusAsync(Handle, cancelled.Token));
    }

    [Fact]
    public async Task Stop_is_not_cut_by_the_request_timeout_and_ends_after_the_grace_period_and_the_timeout()
    {
        using var engine = new HungEngine(Path.Combine(_dir, "docker.sock"));
        var time = new FakeTimeProvider();
        var backend = new DockerWorkspaceBackend(new DockerBackendOptions { Endpoint = engine.Endpoint, RequestTimeout = TimeSpan.FromSeconds(1) }, new NoGpus(), time);

        var stop = backend.StopAsync(Handle, CancellationToken.None);
        await Task.WhenAny(engine.StopRequested.Task, stop).WaitAsync(TimeSpan.FromMinutes(1));
        Assert.False(stop.IsCompleted, $"stop ended before it asked the engine to stop the container: {stop.Exception}");
        // Longer than the request timeout on the real clock: had Docker.DotNet's default timeout cut the stop, the error
        // below would name 1 s.
        await Task.Delay(TimeSpan.FromSeconds(2));
        time.Advance(TimeSpan.FromSeconds(DockerBackendOptions.StopGraceSeconds + 1));
        var ex = await Assert.ThrowsAsync<EnvironmentNotReadyException>(() => stop);
        Assert.StartsWith($"the Docker engine at {engine.Endpoint} did not answer within 11 s; ", ex.Message, StringComparison.Ordinal);
    }
}
