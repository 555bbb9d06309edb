using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Net.WebSockets;
using System.Text;
using System.Text.Json;
using CliWrap;
using CliWrap.Buffered;
using Xunit;
using Xunit.Sdk;

namespace Dsvm.Testing;

/// <summary>
/// The hub image of deploy/hub, for the tests that run the hub as users deploy it (HubOnClusterTests on Kubernetes,
/// HubOnSwarmTests on the swarm lab): the self-contained publish and the build on the local <c>dsvm-base/*</c> image.
/// </summary>
public static class HubImage
{
    /// <summary>
    /// <c>dotnet publish src/Dsvm.Cli -c Release -r linux-x64 --self-contained -o deploy/hub/app</c>, unless the output
    /// there was published from the sources as they are (a stamp beside it holds the newest source time it saw).
    /// </summary>
    public static async Task PublishAsync(Action<string> log, CancellationToken ct)
    {
        var root = TestEnvironment.RepoRoot;
        var app = Path.Combine(root, "deploy", "hub", "app");
        var stamp = Path.Combine(root, "deploy", "hub", "app.published");
        var sources = NewestSource(root);
        if (File.Exists(Path.Combine(app, "dsvm")) && File.Exists(stamp) && (await File.ReadAllTextAsync(stamp, ct)).Trim() == sources)
        {
            log($"reusing the hub publish output in {app} (sources unchanged since it was published)");
            return;
        }

        var watch = Stopwatch.StartNew();
        var r = await Cli.Wrap("dotnet")
            .WithArguments(["publish", Path.Combine(root, "src", "Dsvm.Cli"), "-c", "Release", "-r", "linux-x64", "--self-contained", "-o", app,
                "-nologo", "-v", "quiet", "--disable-build-servers"])
            .WithWorkingDirectory(root).WithValidation(CommandResultValidation.None).ExecuteBufferedAsync(ct);
        Assert.True(r.ExitCode == 0, $"dotnet publish of the hub failed (exit {r.ExitCode}):\n{r.StandardOutput}\n{r.StandardError}");
        await File.WriteAllTextAsync(stamp, sources, ct);
        log($"hub published in {watch.Elapsed.TotalSeconds:0}s");
    }

    /// <summary>The newest write time of what the publish reads: src/ (without bin/obj) and the build settings.</summary>
    private static string NewestSource(string root)
    {
        var files = Directory.EnumerateFiles(Path.Combine(root, "src"), "*", SearchOption.AllDirectories)
            .Where(f => !f.Split(Path.DirectorySeparatorChar).Any(p => p is "bin" or "obj"))
            .Concat(new[] { "Directory.Build.props", "Directory.Packages.props", "global.json" }.Select(f => Path.Combine(root, f)).Where(File.Exists));
        return files.Max(File.GetLastWriteTimeUtc).Ticks.ToString(System.Globalization.CultureInfo.InvariantCulture);
    }

    /// <summary>
    /// <c>docker build</c> of deploy/hub on the local engine's <c>dsvm-base/*</c> image (made by <c>dsvm env build</c>),
    /// tagged <paramref name="tag"/>; returns the base it used.
    /// </summary>
    public static async Task<string> BuildAsync(string tag, CancellationToken ct)
    {
        var baseImage = await BaseAsync(ct);
        await DockerAsync(["build", "--build-arg", $"BASE={baseImage}", "-t", tag, Path.Combine(TestEnvironment.RepoRoot, "deploy", "hub")], ct,
            ("DOCKER_BUILDKIT", "0"));
        return baseImage;
    }

    /// <summary>The local engine's first <c>dsvm-base/*</c> image (the debootstrap base the environments are built on).</summary>
    public static async Task<string> BaseAsync(CancellationToken ct) =>
        (await DockerAsync(["images", "--format", "{{.Repository}}:{{.Tag}}", "--filter", "reference=dsvm-base/*"], ct))
            .Split('\n', StringSplitOptions.RemoveEmptyEntries).FirstOrDefault()
            ?? throw new XunitException("no dsvm-base/* image on the local engine (BuiltEnvironment builds one with the environment)");

    public static async Task<string> DockerAsync(string[] args, CancellationToken ct, params (string Name, string Value)[] env)
    {
        var r = await Cli.Wrap("docker").WithArguments(args)
            .WithEnvironmentVariables(e =>
            {
                foreach (var (name, value) in env)
                {
                    e.Set(name, value);
                }
            })
            .WithValidation(CommandResultValidation.None).ExecuteBufferedAsync(ct);
        Assert.True(r.ExitCode == 0, $"docker {string.Join(' ', args)} failed (exit {r.ExitCode}):\n{Tail(r.StandardOutput)}\n{Tail(r.StandardError)}");
        return r.StandardOutput;
    }

    /// <summary>Every local name under the test's registry (tags it made, digests the kubelet pulled): removed, images kept if otherwise named.</summary>
    public static async Task RemoveRegistryImagesAsync(string registry, CancellationToken ct)
    {
        var r = await Cli.Wrap("docker").WithArguments(["images", "--digests", "--format", "{{.Repository}} {{.Tag}} {{.Digest}}", "--filter", $"reference={registry}/*/*"])
            .WithValidation(CommandResultValidation.None).ExecuteBufferedAsync(ct);
        var names = r.StandardOutput.Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(l => l.Split(' '))
            .SelectMany(p => new[] { p[1] != "<none>" ? $"{p[0]}:{p[1]}" : null, p[2] != "<none>" ? $"{p[0]}@{p[2]}" : null })
            .OfType<string>().Distinct().ToList();
        if (names.Count > 0)
        {
            await Cli.Wrap("docker").WithArguments(["rmi", .. names]).WithValidation(CommandResultValidation.None).ExecuteBufferedAsync(ct);
        }
    }

    public static string Tail(string text) => text.Length > 4000 ? "…" + text[^4000..] : text;
}

/// <summary>A hub's health endpoint, as deployment tests wait on it.</summary>
public static class Healthz
{
    /// <summary>Whether <c>GET /healthz</c> answers a success, and what it answered (a status code or the error).</summary>
    public static async Task<(bool Ok, string Answer)> AskAsync(HttpClient http, Uri hub, CancellationToken ct)
    {
        try
        {
            using var r = await http.GetAsync(new Uri(hub, "healthz"), ct);
            return (r.IsSuccessStatusCode, $"{(int)r.StatusCode}");
        }
        catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException && !ct.IsCancellationRequested)
        {
            return (false, ex.Message);
        }
    }
}

public static class Wait
{
    /// <summary>Polls <paramref name="condition"/> every half second; fails with <paramref name="failure"/>'s text after <paramref name="within"/>.</summary>
    public static async Task UntilAsync(Func<Task<bool>> condition, TimeSpan within, Func<string> failure, CancellationToken ct)
    {
        var deadline = Stopwatch.StartNew();
        while (!await condition())
        {
            if (deadline.Elapsed > within)
            {
                throw new XunitException($"{failure()} (waited {within.TotalSeconds:0}s)");
            }

            await Task.Delay(500, ct);
        }
    }
}

/// <summary>A browser-like session on the hub: its cookie, and the CSRF header the hub asks of unsafe requests.</summary>
public sealed class HubSession : IDisposable
{
    private readonly HttpClient _http;

    private HubSession(Uri hub)
    {
        Hub = hub;
        _http = new HttpClient(new SocketsHttpHandler { CookieContainer = Cookies, UseProxy = false, AllowAutoRedirect = false })
        {
            BaseAddress = hub, Timeout = TimeSpan.FromMinutes(4),
        };
    }

    public Uri Hub { get; }

    public CookieContainer Cookies { get; } = new();

    public static async Task<HubSession> LogInAsync(Uri hub, string name, string password, CancellationToken ct)
    {
        var session = new HubSession(hub);
        (await session.SendAsync(HttpMethod.Post, "api/v1/login", new { name, password }, ct)).Expect(HttpStatusCode.OK);
        var csrf = (await session.SendAsync(HttpMethod.Get, "hub/csrf", null, ct)).Expect(HttpStatusCode.OK).Json.GetProperty("csrf").GetString();
        session._http.DefaultRequestHeaders.Add("X-Dsvm-Csrf", csrf);
        return session;
    }

    public async Task<HubAnswer> SendAsync(HttpMethod method, string path, object? body, CancellationToken ct)
    {
        using var request = new HttpRequestMessage(method, new Uri(path, UriKind.Relative));
        if (body is not null)
        {
            request.Content = JsonContent.Create(body);
        }

        using var response = await _http.SendAsync(request, ct);
        return new HubAnswer($"{method} {path}", response.StatusCode, await response.Content.ReadAsStringAsync(ct));
    }

    /// <summary>
    /// Runs code in a new kernel of a workspace through the hub's proxy: the kernel is made with the REST API and the
    /// code goes over <c>api/kernels/ID/channels</c> (Jupyter's JSON WebSocket protocol), with the hub session's
    /// cookie, never the workspace's token. Returns what the code printed; fails on an error reply.
    /// </summary>
    public async Task<string> RunInKernelAsync(string owner, string name, string code, CancellationToken ct)
    {
        var prefix = $"user/{owner}/{name}/";
        var kernel = (await SendAsync(HttpMethod.Post, prefix + "api/kernels", new { name = "python3" }, ct)).Expect(HttpStatusCode.Created)
            .Json.GetProperty("id").GetString()!;
        try
        {
            using var socket = new ClientWebSocket();
            socket.Options.Proxy = null;
            socket.Options.Cookies = Cookies;
            var ws = new UriBuilder(new Uri(Hub, prefix + $"api/kernels/{kernel}/channels")) { Scheme = "ws" }.Uri;
            await socket.ConnectAsync(ws, ct);
            var msgId = Guid.NewGuid().ToString("N");
            await socket.SendAsync(KernelMessages.ExecuteRequest(code, msgId, "e2e"), WebSocketMessageType.Text, true, ct);
            var printed = new StringBuilder();
            string? status = null;
            var idle = false;
            var buffer = new byte[64 * 1024];
            using var message = new MemoryStream();
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
            timeout.CancelAfter(TimeSpan.FromMinutes(2));
            while (status is null || !idle)
            {
                var r = await socket.ReceiveAsync(buffer, timeout.Token);
                Assert.True(r.MessageType != WebSocketMessageType.Close, $"the kernel's channel closed before the reply ({r.CloseStatusDescription}); printed so far: {printed}");
                message.Write(buffer, 0, r.Count);
                if (!r.EndOfMessage)
                {
                    continue;
                }

                using var doc = JsonDocument.Parse(message.ToArray());
                message.SetLength(0);
                var m = doc.RootElement;
                if (m.GetProperty("parent_header").TryGetProperty("msg_id", out var parent) && parent.GetString() == msgId)
                {
                    var content = m.GetProperty("content");
                    switch (m.GetProperty("msg_type").GetString())
                    {
                        case "stream":
                            printed.Append(content.GetProperty("text").GetString());
                            break;
                        case "error":
                            printed.AppendJoin('\n', content.GetProperty("traceback").EnumerateArray().Select(t => t.GetString()));
                            break;
                        case "execute_reply":
                            status = content.GetProperty("status").GetString();
                            break;
                        case "status":
                            idle = content.GetProperty("execution_state").GetString() == "idle";
                            break;
                    }
                }
            }

            Assert.True(status == "ok", $"the code failed in {owner}/{name}: {printed}");
            await socket.CloseAsync(WebSocketCloseStatus.NormalClosure, null, ct);
            return printed.ToString();
        }
        finally
        {
            await SendAsync(HttpMethod.Delete, prefix + $"api/kernels/{kernel}", null, ct);
        }
    }

    public void Dispose() => _http.Dispose();
}

public sealed record HubAnswer(string Request, HttpStatusCode Status, string Body)
{
    public JsonElement Json => JsonDocument.Parse(Body).RootElement;

    public HubAnswer Expect(HttpStatusCode status)
    {
        Assert.True(Status == status, $"{Request}: expected {(int)status} {status}, got {(int)Status} {Status}: {HubImage.Tail(Body)}");
        return this;
    }
}
