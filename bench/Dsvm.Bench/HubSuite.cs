using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Net.WebSockets;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Dsvm.Core;
using Dsvm.Core.Sizes;
using Dsvm.Core.Specs;
using Dsvm.Core.Workspaces;
using Dsvm.Data;
using Dsvm.Docker;
using Dsvm.Hub;
using Dsvm.Hub.Services;
using Dsvm.Images;
using Dsvm.Testing.Jupyter;
using Microsoft.AspNetCore.Builder;
using Microsoft.Data.Sqlite;

namespace Dsvm.Bench;

/// <summary>
/// The hub: proxy overhead under load (wrk) direct vs through the hub, WebSocket round trips, the hub's memory with
/// 100 routed workspaces (fake Jupyter servers on Kestrel, in this process) and many concurrent starts through the
/// API on the Docker engine. Only loopback addresses; every loop is bounded in time.
/// </summary>
internal sealed partial class HubSuite
{
    private const string AdminName = "admin";
    private const string AdminPassword = "bench-admin-password-1";
    private const string CsrfCookie = "dsvm-csrf";
    private const string CsrfHeader = "X-Dsvm-Csrf";
    private const int Connections = 10;
    private const int WrkThreads = 2;
    private const int WebSocketMessages = 2000;
    private const int MemoryWorkspaces = 100;
    private const double ChpRequestsPerSecond = 900;
    private const double OverheadGoalMs = 1;
    private const double ThroughputGoal = 3 * ChpRequestsPerSecond;

    private readonly BenchOptions _options;
    private readonly BenchHome _home;
    private readonly ImageServices? _images;
    private readonly string _run = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(2));
    private readonly List<string> _notes = [];

    public HubSuite(BenchOptions options, BenchHome home, ImageServices? images)
    {
        _options = options;
        _home = home;
        _images = images;
    }

    public async Task<HubSuiteResult> RunAsync(CancellationToken ct)
    {
        var load = new List<LoadRow>();
        var rtt = new List<RttRow>();
        var memory = new List<HubMemoryRow>();
        var starts = new List<StartRow>();
        var goals = new List<GoalRow>();

        await FakeHubAsync(load, rtt, memory, goals, ct);
        if (_options.SkipDocker || _images is null)
        {
            _notes.Add("concurrent starts on Docker: skipped (--skip-docker).");
        }
        else
        {
            await DockerStartsAsync(starts, ct);
        }

        _notes.Add($"host: {System.Environment.ProcessorCount} CPUs shared by wrk, the hub and the fake Jupyter servers (all on 127.0.0.1), so the figures are lower bounds of what the hub alone would do.");
        return new HubSuiteResult(load, rtt, memory, starts, goals,
        [
            new PublishedRow("configurable-http-proxy (JupyterHub), concurrency 10", $"~{ChpRequestsPerSecond:0} req/s"),
        ], _notes);
    }

    // ---------------------------------------------------------------- fake Jupyter hub: load, WebSockets, memory

    private async Task FakeHubAsync(List<LoadRow> load, List<RttRow> rtt, List<HubMemoryRow> memory, List<GoalRow> goals, CancellationToken ct)
    {
        var root = Path.Combine(_home.Root, $"hub-fake-{_run}");
        var paths = new DsvmPaths(Path.Combine(root, "data"), Path.Combine(root, "cache")).EnsureCreated();
        var store = new SqliteWorkspaceStore(paths.Database);
        await using var backend = new FakeJupyterBackend { RecordRequests = false, Capacity = new HostCapacity(64, 256L * 1024 * 1024 * 1024, 0) };
        var options = new HubOptions
        {
            Listen = "http://127.0.0.1:0",
            AdminName = AdminName,
            AdminPassword = AdminPassword,
            IdleTimeout = TimeSpan.Zero,
            MaxConcurrentStarts = MemoryWorkspaces,
            DefaultQuota = new Quota { MaxWorkspaces = null, MaxVcpus = null, MaxGpus = null },
        };
        var app = HubHost.Build(options, new HubDependencies
        {
            Backend = backend,
            Store = store,
            Gpus = new NoGpus(),
            Environments = new StaticEnvironmentCatalog([new HubEnvironment("minimal", "dsvm/minimal:fake", GpuMode.None, "fake Jupyter", 0)]),
            Paths = paths,
        }, logging: _ => { });
        try
        {
            await HubHost.InitializeAsync(app, ct);
            await app.StartAsync(ct);
            var hub = new Uri(app.Urls.First().TrimEnd('/') + "/");
            Log.Say($"hub (fake backend) listening on {hub}");
            var user = $"bench-f{_run}";
            using var admin = await LoginAsync(hub, AdminName, AdminPassword, ct);
            var (token, cookie) = await CreateUserWithSessionAsync(hub, admin, user, ct);
            using var http = TokenClient(hub, token);

            await MemoryAsync(backend, http, user, memory, ct);

            // Load and WebSockets on the first of those workspaces.
            var name = WorkspaceName(1);
            var server = backend.ServerFor(user, name) ?? throw new InvalidOperationException($"no fake server for {user}/{name}");
            var jupyterToken = backend.TokenFor(user, name);
            var directBase = new Uri(server.Endpoint, server.BaseUrl);
            var hubBase = new Uri(hub, $"user/{user}/{name}/");
            var direct = await LoadAsync("direct to the fake Jupyter", new Uri(directBase, "api/status"), $"token {jupyterToken}", ct);
            var proxied = await LoadAsync("through the hub proxy", new Uri(hubBase, "api/status"), $"token {token}", ct);
            load.Add(direct);
            load.Add(proxied);
            // The same through a browser session (cookie, checked against the accounts database on each request).
            load.Add(await LoadAsync("through the hub proxy, session cookie", new Uri(hubBase, "api/status"), null, ct, cookie));
            // Refused before any database read (no credentials: 401 from the proxy, counted as errors by wrk).
            load.Add(await LoadAsync("through the hub proxy, no credentials (401, no DB read)", new Uri(hubBase, "api/status"), null, ct, "dsvm-none=1"));
            // The hub's own floor: Kestrel and routing, no authentication, no proxying.
            load.Add(await LoadAsync("hub GET /healthz (no auth, no proxy)", new Uri(hub, "healthz"), null, ct, "dsvm-none=1"));

            rtt.Add(await WebSocketRttAsync("direct to the fake Jupyter", directBase, $"token {jupyterToken}", ct));
            rtt.Add(await WebSocketRttAsync("through the hub proxy", hubBase, $"token {token}", ct));

            GC.Collect();
            GC.WaitForPendingFinalizers();
            memory.Add(MemoryNow("after the load and WebSocket runs", null));

            var overhead = direct.P99Ms is { } d && proxied.P99Ms is { } p ? p - d : (double?)null;
            goals.Add(new GoalRow($"proxy overhead p99 < {OverheadGoalMs:0} ms (hub p99 − direct p99, {Connections} connections)",
                overhead is { } o ? $"{o.ToString("0.00", CultureInfo.InvariantCulture)} ms" : "not measured", overhead is { } x ? x < OverheadGoalMs : null));
            goals.Add(new GoalRow($"throughput > {ThroughputGoal:0} req/s through the hub (3× CHP's ~{ChpRequestsPerSecond:0})",
                proxied.RequestsPerSecond is { } rps ? $"{rps:0} req/s ({rps / ChpRequestsPerSecond:0.0}× CHP)" : "not measured",
                proxied.RequestsPerSecond is { } r ? r > ThroughputGoal : null));
            var wsOverhead = rtt.Count == 2 && rtt[0].P99Ms is { } w0 && rtt[1].P99Ms is { } w1 ? w1 - w0 : (double?)null;
            goals.Add(new GoalRow("WebSocket RTT overhead p99 (hub − direct; no goal set)",
                wsOverhead is { } wo ? $"{wo.ToString("0.00", CultureInfo.InvariantCulture)} ms" : "not measured", null));
        }
        finally
        {
            await StopAsync(app);
            SqliteConnection.ClearAllPools();
            TryDelete(root);
        }
    }

    private async Task MemoryAsync(FakeJupyterBackend backend, HttpClient http, string user, List<HubMemoryRow> memory, CancellationToken ct)
    {
        Log.Say($"starting {MemoryWorkspaces} fake Jupyter servers (Kestrel, one port each) ahead of the workspaces");
        await backend.PrestartAsync(MemoryWorkspaces, ct);
        // Warm the hub's paths (JIT, EF model, pools) with a throwaway workspace, so "before" is not a cold process.
        await StartFakeAsync(http, "warmup", ct);
        await HitAsync(http, user, "warmup", ct);
        await http.DeleteAsync($"api/v1/workspaces/{user}/warmup", ct);
        await backend.PrestartAsync(1, ct);
        var before = MemoryNow($"before: hub idle, {MemoryWorkspaces} fake servers up, no workspaces", null);
        memory.Add(before);

        Log.Say($"creating {MemoryWorkspaces} workspaces through the API (?wait=true, 10 at once)");
        var sw = Stopwatch.StartNew();
        using (var gate = new SemaphoreSlim(10))
        {
            await Task.WhenAll(Enumerable.Range(1, MemoryWorkspaces).Select(async i =>
            {
                await gate.WaitAsync(ct);
                try
                {
                    await StartFakeAsync(http, WorkspaceName(i), ct);
                }
                finally
                {
                    gate.Release();
                }
            }));
        }

        var created = sw.Elapsed.TotalSeconds;
        var ok = 0;
        for (var i = 1; i <= MemoryWorkspaces; i++)
        {
            ok += await HitAsync(http, user, WorkspaceName(i), ct) ? 1 : 0;
        }

        Log.Say($"{MemoryWorkspaces} workspaces created in {created:0.0} s; {ok} of {MemoryWorkspaces} routes answered 200");
        var after = MemoryNow($"after: {MemoryWorkspaces} workspaces running, each route hit once", $"{ok} of {MemoryWorkspaces} answered 200 through the proxy");
        memory.Add(after);
        var managedDelta = after.ManagedMiB - before.ManagedMiB;
        var workingSetDelta = after.WorkingSetMiB - before.WorkingSetMiB;
        memory.Add(new HubMemoryRow($"difference (after − before)", Math.Round(managedDelta, 1), Math.Round(workingSetDelta, 1),
            string.Create(CultureInfo.InvariantCulture, $"per workspace: {managedDelta * 1024 / MemoryWorkspaces:0} KiB managed, {workingSetDelta * 1024 / MemoryWorkspaces:0} KiB working set")));
        _notes.Add($"hub memory: measured in the benchmark's own process (a hub with a fake backend cannot run as `dsvm hub serve`), which also hosts the {MemoryWorkspaces} fake Jupyter servers "
            + "(one Kestrel each, started before the 'before' row so the difference is mostly the hub's). Managed = GC.GetTotalMemory(true); working set = the whole process.");
    }

    private static HubMemoryRow MemoryNow(string stage, string? note)
    {
        var managed = GC.GetTotalMemory(forceFullCollection: true);
        using var self = Process.GetCurrentProcess();
        self.Refresh();
        return new HubMemoryRow(stage, Math.Round(managed / (1024.0 * 1024), 1), Math.Round(self.WorkingSet64 / (1024.0 * 1024), 1), note);
    }

    private static async Task StartFakeAsync(HttpClient http, string name, CancellationToken ct)
    {
        using var r = await http.PostAsJsonAsync("api/v1/workspaces?wait=true", new { name, environment = "minimal", size = "small" }, ct);
        if (!r.IsSuccessStatusCode)
        {
            throw new DsvmException($"starting fake workspace {name}: {(int)r.StatusCode} {await r.Content.ReadAsStringAsync(ct)}");
        }
    }

    private static async Task<bool> HitAsync(HttpClient http, string user, string name, CancellationToken ct)
    {
        using var r = await http.GetAsync($"user/{user}/{name}/api/status", ct);
        return r.StatusCode == HttpStatusCode.OK;
    }

    private static string WorkspaceName(int i) => $"w{i:000}";

    // ---------------------------------------------------------------- load (wrk, or an HttpClient loop)

    private async Task<LoadRow> LoadAsync(string target, Uri url, string? authorization, CancellationToken ct, string? cookie = null)
    {
        var header = authorization is not null ? $"Authorization: {authorization}" : $"Cookie: {cookie}";
        var seconds = _options.Duration;
        if (await WrkAvailableAsync(ct))
        {
            Log.Say($"wrk warm-up (2 s), then {seconds} s: {target}");
            await RunWrkAsync(url, header, 2, ct);
            var (output, rc) = await RunWrkAsync(url, header, seconds, ct);
            return ParseWrk(target, output, rc, seconds);
        }

        Log.Say($"HttpClient load loop (wrk missing) warm-up (2 s), then {seconds} s: {target}");
        await HttpLoopAsync(target, url, header, 2, ct);
        return await HttpLoopAsync(target, url, header, seconds, ct);
    }

    private bool? _wrk;

    private async Task<bool> WrkAvailableAsync(CancellationToken ct)
    {
        if (_wrk is null)
        {
            try
            {
                var (output, _) = await RunProcessAsync("wrk", ["--version"], TimeSpan.FromSeconds(10), ct);
                _wrk = output.Contains("wrk", StringComparison.Ordinal);
            }
            catch (System.ComponentModel.Win32Exception)
            {
                _wrk = false;
            }

            if (_wrk == false)
            {
                _notes.Add("wrk is not installed (apt-get install -y wrk): the load rows come from an in-process HttpClient loop instead, which shares the CPUs with the hub.");
            }
        }

        return _wrk.Value;
    }

    private static Task<(string Output, int ExitCode)> RunWrkAsync(Uri url, string header, int seconds, CancellationToken ct) =>
        RunProcessAsync("wrk",
            [$"-t{WrkThreads}", $"-c{Connections}", $"-d{seconds}s", "--latency", "--timeout", "5s", "-H", header, url.ToString()],
            TimeSpan.FromSeconds(seconds + 30), ct);

    private static async Task<(string Output, int ExitCode)> RunProcessAsync(string file, IEnumerable<string> args, TimeSpan limit, CancellationToken ct)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }

        using var process = Process.Start(psi) ?? throw new InvalidOperationException($"{file} did not start");
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(limit);
        var stdout = process.StandardOutput.ReadToEndAsync(timeout.Token);
        var stderr = process.StandardError.ReadToEndAsync(timeout.Token);
        try
        {
            await process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw;
        }

        return (await stdout + await stderr, process.ExitCode);
    }

    /// <summary>Reads wrk's summary: Requests/sec, the --latency distribution, non-2xx answers and socket errors.</summary>
    internal static LoadRow ParseWrk(string target, string output, int exitCode, int seconds)
    {
        double? P(string pct)
        {
            var m = Regex.Match(output, $@"^\s*{pct}%\s+([0-9.]+)(us|ms|s|m)\s*$", RegexOptions.Multiline);
            if (!m.Success)
            {
                return null;
            }

            var v = double.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture);
            return m.Groups[2].Value switch
            {
                "us" => v / 1000,
                "ms" => v,
                "s" => v * 1000,
                _ => v * 60_000,
            };
        }

        var rps = WrkRps().Match(output) is { Success: true } r ? double.Parse(r.Groups[1].Value, CultureInfo.InvariantCulture) : (double?)null;
        var total = WrkTotal().Match(output) is { Success: true } t ? long.Parse(t.Groups[1].Value, CultureInfo.InvariantCulture) : (long?)null;
        long errors = WrkNon2xx().Match(output) is { Success: true } n ? long.Parse(n.Groups[1].Value, CultureInfo.InvariantCulture) : 0;
        if (WrkSocketErrors().Match(output) is { Success: true } e)
        {
            errors += Enumerable.Range(1, 4).Sum(g => long.Parse(e.Groups[g].Value, CultureInfo.InvariantCulture));
        }

        string? note = exitCode != 0 || rps is null ? $"wrk exit {exitCode}: {output.Trim().Split('\n')[^1]}" : null;
        return new LoadRow(target, $"wrk -t{WrkThreads} -c{Connections} -d{seconds}s", total, rps, P("50"), P("90"), P("99"), errors, note);
    }

    [GeneratedRegex(@"Requests/sec:\s+([0-9.]+)")]
    private static partial Regex WrkRps();

    [GeneratedRegex(@"([0-9]+) requests in")]
    private static partial Regex WrkTotal();

    [GeneratedRegex(@"Non-2xx or 3xx responses:\s+([0-9]+)")]
    private static partial Regex WrkNon2xx();

    [GeneratedRegex(@"Socket errors: connect ([0-9]+), read ([0-9]+), write ([0-9]+), timeout ([0-9]+)")]
    private static partial Regex WrkSocketErrors();

    /// <summary>The fallback: <see cref="Connections"/> loops, each on its own connection, for a bounded time.</summary>
    private static async Task<LoadRow> HttpLoopAsync(string target, Uri url, string header, int seconds, CancellationToken ct)
    {
        using var handler = new SocketsHttpHandler { UseProxy = false, UseCookies = false, MaxConnectionsPerServer = Connections, AllowAutoRedirect = false };
        using var http = new HttpClient(handler) { Timeout = TimeSpan.FromSeconds(5) };
        var colon = header.IndexOf(':', StringComparison.Ordinal);
        http.DefaultRequestHeaders.TryAddWithoutValidation(header[..colon], header[(colon + 1)..].Trim());
        var deadline = Stopwatch.StartNew();
        var limit = TimeSpan.FromSeconds(seconds);
        long errors = 0;
        var lists = await Task.WhenAll(Enumerable.Range(0, Connections).Select(async _ =>
        {
            var ms = new List<double>();
            while (deadline.Elapsed < limit && !ct.IsCancellationRequested)
            {
                var sw = Stopwatch.StartNew();
                try
                {
                    using var r = await http.GetAsync(url, ct);
                    await r.Content.CopyToAsync(Stream.Null, ct);
                    if (!r.IsSuccessStatusCode)
                    {
                        Interlocked.Increment(ref errors);
                    }
                }
                catch (HttpRequestException)
                {
                    Interlocked.Increment(ref errors);
                }

                ms.Add(sw.Elapsed.TotalMilliseconds);
            }

            return ms;
        }));
        var elapsed = deadline.Elapsed.TotalSeconds;
        var all = lists.SelectMany(l => l).Order().ToArray();
        return new LoadRow(target, $"HttpClient loop, {Connections} connections, {seconds} s", all.Length, all.Length / elapsed,
            all.Length == 0 ? null : Stats.Percentile(all, 50), all.Length == 0 ? null : Stats.Percentile(all, 90),
            all.Length == 0 ? null : Stats.Percentile(all, 99), errors, "wrk missing: in-process client");
    }

    // ---------------------------------------------------------------- WebSocket round trips

    private static async Task<RttRow> WebSocketRttAsync(string path, Uri baseUrl, string authorization, CancellationToken ct)
    {
        var url = new UriBuilder(new Uri(baseUrl, "api/kernels/bench/channels")) { Scheme = "ws" }.Uri;
        Log.Say($"WebSocket: {WebSocketMessages} sequential echoes, {path}");
        using var ws = new ClientWebSocket();
        ws.Options.SetRequestHeader("Authorization", authorization);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(TimeSpan.FromSeconds(120));
        try
        {
            await ws.ConnectAsync(url, timeout.Token);
            var buffer = new byte[4096];
            var ms = new List<double>(WebSocketMessages);
            for (var i = -100; i < WebSocketMessages; i++)
            {
                var payload = Encoding.UTF8.GetBytes($"{{\"msg_id\":\"bench-{i}\",\"msg_type\":\"kernel_info_request\"}}");
                var sw = Stopwatch.StartNew();
                await ws.SendAsync(payload, WebSocketMessageType.Text, true, timeout.Token);
                var received = 0;
                ValueWebSocketReceiveResult r;
                do
                {
                    r = await ws.ReceiveAsync(buffer.AsMemory(received), timeout.Token);
                    received += r.Count;
                }
                while (!r.EndOfMessage);

                sw.Stop();
                if (received != payload.Length)
                {
                    throw new InvalidOperationException($"echo of {payload.Length} bytes came back as {received}");
                }

                if (i >= 0)
                {
                    ms.Add(sw.Elapsed.TotalMilliseconds);
                }
            }

            await ws.CloseAsync(WebSocketCloseStatus.NormalClosure, "done", timeout.Token);
            var sorted = ms.Order().ToArray();
            return new RttRow(path, sorted.Length, Stats.Percentile(sorted, 50), Stats.Percentile(sorted, 95), Stats.Percentile(sorted, 99), sorted[^1],
                "after 100 unmeasured warm-up echoes; ~60-byte text messages");
        }
        catch (Exception ex) when (ex is WebSocketException or OperationCanceledException or InvalidOperationException && !ct.IsCancellationRequested)
        {
            return new RttRow(path, 0, null, null, null, null, "failed: " + ex.Message);
        }
    }

    // ---------------------------------------------------------------- concurrent starts on Docker

    private async Task DockerStartsAsync(List<StartRow> starts, CancellationToken ct)
    {
        var images = _images!;
        var latest = await LatestTag.CaptureAsync(images.Docker, "minimal", ct);
        var store = new SqliteWorkspaceStore(_home.Paths.Database);
        var gpus = new NvidiaGpuDetector();
        var workspaceOptions = new WorkspaceOptions { StartTimeout = TimeSpan.FromSeconds(300) };
        var direct = new WorkspaceManager(new DockerWorkspaceBackend(new DockerBackendOptions(), gpus), store, SizeCatalog.Load(null), gpus,
            new HttpReadinessProbe(), _home.Paths, TimeProvider.System, workspaceOptions);
        try
        {
            await DeleteLeftoversAsync(direct, store);
            var image = await WorkspaceSuite.EnsureMinimalImageAsync(_home, images, latest, _notes, ct);
            var n = _options.ConcurrentStarts;
            starts.Add(await StartRunAsync(store, direct, gpus, image, n, n, "a", ct));
            starts.Add(await StartRunAsync(store, direct, gpus, image, n, new HubOptions().MaxConcurrentStarts, "b", ct));
        }
        finally
        {
            await DeleteLeftoversAsync(direct, store);
            if (await latest.RestoreAsync() is { } problem)
            {
                _notes.Add(problem);
            }
        }

        _notes.Add("concurrent starts: one user (quota lifted), POST /api/v1/workspaces (202) for each at once, a client that waits Retry-After on 429 and tries again, "
            + "then GET /api/v1/workspaces/OWNER/NAME every 0.5 s until it runs; 'each' is from the first POST to the poll that saw it running. "
            + "Size small (1 vCPU, 2 GiB limits), image minimal; all deleted with their homes afterwards, outside the timing.");
    }

    private async Task<StartRow> StartRunAsync(SqliteWorkspaceStore store, WorkspaceManager direct, IGpuDetector gpus, string image, int n, int maxStarts, string tag, CancellationToken ct)
    {
        var options = new HubOptions
        {
            Listen = "http://127.0.0.1:0",
            AdminName = AdminName,
            AdminPassword = AdminPassword,
            IdleTimeout = TimeSpan.Zero,
            MaxConcurrentStarts = maxStarts,
            DefaultQuota = new Quota { MaxWorkspaces = null, MaxVcpus = null, MaxGpus = null },
        };
        var app = HubHost.Build(options, new HubDependencies
        {
            Backend = new DockerWorkspaceBackend(new DockerBackendOptions(), gpus),
            Store = store,
            Gpus = gpus,
            Environments = new StaticEnvironmentCatalog([new HubEnvironment("minimal", image, GpuMode.None, "minimal", 0)]),
            Paths = _home.Paths,
            WorkspaceOptions = new WorkspaceOptions { StartTimeout = TimeSpan.FromSeconds(300) },
        }, logging: _ => { });
        var user = $"bench-h{_run}{tag}";
        var names = Enumerable.Range(1, n).Select(i => $"w{i}").ToList();
        var scenario = $"{n} starts at once, MaxConcurrentStarts = {maxStarts}";
        HttpClient? http = null;
        HttpClient? admin = null;
        try
        {
            await HubHost.InitializeAsync(app, ct);
            await app.StartAsync(ct);
            var hub = new Uri(app.Urls.First().TrimEnd('/') + "/");
            admin = await LoginAsync(hub, AdminName, AdminPassword, ct);
            http = TokenClient(hub, await CreateUserWithTokenAsync(hub, admin, user, ct));
            Log.Say($"{scenario}: posting");

            var throttled = 0;
            var refused = new List<string>();
            using var bound = CancellationTokenSource.CreateLinkedTokenSource(ct);
            bound.CancelAfter(TimeSpan.FromSeconds(300 + (10.0 * n / maxStarts) + 60));
            var sw = Stopwatch.StartNew();
            var client = http;
            // Each workspace: POST (again after Retry-After on 429), then GET it every 0.5 s until it runs or fails.
            // (GET of one workspace reads the hub's records; the list refreshes every workspace from the engine.)
            var running = new System.Collections.Concurrent.ConcurrentDictionary<string, double>(StringComparer.Ordinal);
            var failed = new System.Collections.Concurrent.ConcurrentDictionary<string, string>(StringComparer.Ordinal);
            string? pollError = null;
            var all = Task.WhenAll(names.Select(async name =>
            {
                while (true)
                {
                    using var r = await client.PostAsJsonAsync("api/v1/workspaces", new { name, environment = "minimal", size = "small" }, bound.Token);
                    if (r.StatusCode == HttpStatusCode.TooManyRequests)
                    {
                        Interlocked.Increment(ref throttled);
                        var wait = r.Headers.RetryAfter?.Delta ?? TimeSpan.FromSeconds(5);
                        await Task.Delay(wait, bound.Token);
                        continue;
                    }

                    if (!r.IsSuccessStatusCode)
                    {
                        var why = $"{name}: {(int)r.StatusCode} {FirstLine(await r.Content.ReadAsStringAsync(bound.Token))}";
                        lock (refused)
                        {
                            refused.Add(why);
                        }

                        return;
                    }

                    break;
                }

                while (true)
                {
                    try
                    {
                        using var r = await client.GetAsync($"api/v1/workspaces/{user}/{name}", bound.Token);
                        if (r.IsSuccessStatusCode)
                        {
                            var w = await r.Content.ReadFromJsonAsync<JsonElement>(bound.Token);
                            var state = w.GetProperty("state").GetString();
                            if (state == "running")
                            {
                                running[name] = sw.Elapsed.TotalSeconds;
                                return;
                            }

                            if (state == "failed")
                            {
                                failed[name] = w.TryGetProperty("lastError", out var e) && e.ValueKind == JsonValueKind.String ? FirstLine(e.GetString()!) : "failed";
                                return;
                            }
                        }
                        else
                        {
                            pollError = $"GET {name}: {(int)r.StatusCode}";
                        }
                    }
                    catch (HttpRequestException ex)
                    {
                        pollError = ex.Message;
                    }

                    await Task.Delay(500, bound.Token);
                }
            }));

            var timedOut = false;
            try
            {
                await all;
            }
            catch (OperationCanceledException) when (!ct.IsCancellationRequested)
            {
                timedOut = true;
            }

            ct.ThrowIfCancellationRequested();

            // What the web UI's list costs with all of them up: it asks the engine about each workspace in turn.
            var listSw = Stopwatch.StartNew();
            using (var list = await http.GetAsync("api/v1/workspaces", ct))
            {
                listSw.Stop();
                _ = list.StatusCode;
            }

            var wall = running.Count == n ? running.Values.Max() : (double?)null;
            var failures = n - running.Count;
            Log.Say($"{scenario}: {running.Count} of {n} running{(wall is { } s ? $" after {s:0.0} s" : "")}; {throttled} answers 429");
            var note = new List<string>();
            if (throttled > 0)
            {
                note.Add($"{throttled} × 429 with Retry-After, retried");
            }

            if (refused.Count > 0)
            {
                note.Add("refused: " + refused[0]);
            }

            if (!failed.IsEmpty)
            {
                note.Add("failed: " + failed.First().Key + ": " + failed.First().Value);
            }

            if (timedOut)
            {
                note.Add("stopped waiting (time bound)");
            }

            if (pollError is not null)
            {
                note.Add("poll: " + pollError);
            }

            note.Add(string.Create(CultureInfo.InvariantCulture, $"GET /api/v1/workspaces (list of {n}) then took {listSw.Elapsed.TotalSeconds:0.00} s"));

            return new StartRow(scenario, n, maxStarts, wall, Summary.Of(running.Values), throttled, failures, string.Join("; ", note));
        }
        finally
        {
            Log.Say($"deleting {user}'s workspaces with their homes");
            if (http is not null)
            {
                using var gate = new SemaphoreSlim(4);
                var client = http;
                await Task.WhenAll(names.Select(async name =>
                {
                    await gate.WaitAsync(CancellationToken.None);
                    try
                    {
                        using var r = await client.DeleteAsync($"api/v1/workspaces/{user}/{name}?deleteHome=true", CancellationToken.None);
                    }
                    catch (HttpRequestException)
                    {
                        // The direct clean-up below catches it.
                    }
                    finally
                    {
                        gate.Release();
                    }
                }));
            }

            if (admin is not null)
            {
                try
                {
                    using var r = await admin.DeleteAsync($"api/v1/users/{user}", CancellationToken.None);
                }
                catch (HttpRequestException)
                {
                }
            }

            http?.Dispose();
            admin?.Dispose();
            await StopAsync(app);
            await DeleteLeftoversAsync(direct, store);
        }
    }

    /// <summary>Deletes (with homes) what the hub suite's users (bench-…) left in the benchmark's store; never anybody else's.</summary>
    private async Task DeleteLeftoversAsync(WorkspaceManager manager, SqliteWorkspaceStore store)
    {
        var left = (await store.ListAsync(null, CancellationToken.None)).Where(w => w.Owner.StartsWith("bench-", StringComparison.Ordinal)).ToList();
        if (left.Count > 0)
        {
            Log.Say($"deleting {left.Count} hub-suite workspaces left behind");
        }

        using var gate = new SemaphoreSlim(4);
        await Task.WhenAll(left.Select(async w =>
        {
            await gate.WaitAsync();
            try
            {
                await manager.DeleteAsync(w.Owner, w.Name, deleteHome: true, null, CancellationToken.None);
            }
            catch (NotFoundException)
            {
            }
            catch (DsvmException ex)
            {
                _notes.Add($"could not delete {w.Owner}/{w.Name}: {FirstLine(ex.Message)}");
            }
            finally
            {
                gate.Release();
            }
        }));
    }

    // ---------------------------------------------------------------- hub API helpers

    /// <summary>A cookie session (with the CSRF header echoed), as the web UI has.</summary>
    internal static Task<HttpClient> LoginAsync(Uri hub, string name, string password, CancellationToken ct) =>
        LoginAsync(hub, name, password, new CookieContainer(), ct);

    private static async Task<HttpClient> LoginAsync(Uri hub, string name, string password, CookieContainer cookies, CancellationToken ct)
    {
        var http = new HttpClient(new SocketsHttpHandler { CookieContainer = cookies, UseCookies = true, UseProxy = false, AllowAutoRedirect = false })
        {
            BaseAddress = hub,
            Timeout = TimeSpan.FromSeconds(60),
        };
        using var r = await http.PostAsJsonAsync("api/v1/login", new { name, password }, ct);
        if (!r.IsSuccessStatusCode)
        {
            http.Dispose();
            throw new DsvmException($"hub login as {name}: {(int)r.StatusCode} {await r.Content.ReadAsStringAsync(ct)}");
        }

        http.DefaultRequestHeaders.Add(CsrfHeader, cookies.GetCookies(hub).FirstOrDefault(c => c.Name == CsrfCookie)?.Value ?? "");
        return http;
    }

    /// <summary>Creates a user through the admin's session, logs in as them and makes an API token; returns its secret.</summary>
    internal static async Task<string> CreateUserWithTokenAsync(Uri hub, HttpClient admin, string user, CancellationToken ct) =>
        (await CreateUserWithSessionAsync(hub, admin, user, ct)).Token;

    /// <summary>As <see cref="CreateUserWithTokenAsync"/>, also returning the Cookie header of the user's browser session.</summary>
    private static async Task<(string Token, string Cookie)> CreateUserWithSessionAsync(Uri hub, HttpClient admin, string user, CancellationToken ct)
    {
        var password = "pw-" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(12));
        using (var r = await admin.PostAsJsonAsync("api/v1/users", new { name = user, password, admin = false }, ct))
        {
            if (!r.IsSuccessStatusCode)
            {
                throw new DsvmException($"creating hub user {user}: {(int)r.StatusCode} {await r.Content.ReadAsStringAsync(ct)}");
            }
        }

        var cookies = new CookieContainer();
        using var session = await LoginAsync(hub, user, password, cookies, ct);
        using var t = await session.PostAsJsonAsync("api/v1/tokens", new { name = "bench", scopes = (string[]?)null, expiresInDays = 1, password }, ct);
        if (!t.IsSuccessStatusCode)
        {
            throw new DsvmException($"creating a token for {user}: {(int)t.StatusCode} {await t.Content.ReadAsStringAsync(ct)}");
        }

        var token = (await t.Content.ReadFromJsonAsync<JsonElement>(ct)).GetProperty("token").GetString()
            ?? throw new DsvmException("the hub answered a token without its secret");
        return (token, cookies.GetCookieHeader(hub));
    }

    internal static HttpClient TokenClient(Uri hub, string token)
    {
        var http = new HttpClient(new SocketsHttpHandler { UseCookies = false, UseProxy = false, AllowAutoRedirect = false })
        {
            BaseAddress = hub,
            Timeout = TimeSpan.FromSeconds(120),
        };
        http.DefaultRequestHeaders.TryAddWithoutValidation("Authorization", $"token {token}");
        return http;
    }

    internal static async Task StopAsync(WebApplication app)
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        try
        {
            await app.StopAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
        }
        catch (InvalidOperationException)
        {
            // Never started.
        }

        await app.DisposeAsync();
    }

    private static void TryDelete(string dir)
    {
        try
        {
            if (Directory.Exists(dir))
            {
                Directory.Delete(dir, recursive: true);
            }
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }

    private static string FirstLine(string message) => message.Trim().Split('\n')[0];
}
