using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Dsvm.Core;
using Dsvm.Core.Sizes;
using Dsvm.Core.Specs;
using Dsvm.Core.Workspaces;
using Dsvm.Data;
using Dsvm.Hub;
using Dsvm.Hub.Data;
using Dsvm.Hub.Services;
using Dsvm.Testing.Jupyter;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Dsvm.Bench;

/// <summary>
/// The hub side by side with its peers, in one interleaved run: the hub's proxy vs configurable-http-proxy (CHP, from
/// npm) vs no proxy, on a trivial static upstream and on a real Jupyter server's <c>api/status</c>, at 10 and 100
/// connections; the hub's user and workspace lists vs JupyterHub's <c>GET /hub/api/users</c> with 1,000 users; the
/// processes' RSS after the load. Every server is its own process on 127.0.0.1 (CPU and RSS come from /proc of each).
/// Each round runs every target once, in an order rotated per round; the medians over rounds are what to quote.
/// </summary>
internal sealed class PeersSuite(BenchOptions options, BenchHome home)
{
    private const int Users = 1000;
    private const int WorkspacesPerOwner = 10;
    private const int Owners = 20; // 200 workspaces
    private const string ServiceToken = "bench-jupyterhub-service-token-0123456789";
    private static readonly long ClockTicks = 100; // USER_HZ on Linux

    private readonly string _root = Path.Combine(home.Root, "peers-" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(2)));
    private readonly List<Process> _children = [];
    private readonly List<string> _notes = [];

    private int Rounds => options.Quick ? 1 : options.Rounds;
    private int Seconds => options.Quick ? 2 : options.PeerDuration;

    public async Task<int> RunAsync(CancellationToken ct)
    {
        Directory.CreateDirectory(_root);
        try
        {
            return await RunInsideAsync(ct);
        }
        finally
        {
            foreach (var p in _children)
            {
                Stop(p);
            }

            try
            {
                Directory.Delete(_root, recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }

    private async Task<int> RunInsideAsync(CancellationToken ct)
    {
        var chp = options.ChpPath ?? throw new DsvmException("--chp PATH (configurable-http-proxy) is needed: bench/run.sh --suite peers installs it from npm");
        var self = typeof(PeersSuite).Assembly.Location;

        // Upstreams.
        var staticPort = FreePort();
        var statik = Spawn("static", "dotnet", [self, "serve-static", staticPort.ToString(CultureInfo.InvariantCulture)]);
        var jupyterPort = FreePort();
        var jupyterDir = Directory.CreateDirectory(Path.Combine(_root, "jupyter")).FullName;
        var jupyter = Spawn("jupyter", "/usr/bin/python3",
        [
            "-m", "jupyter_server", "--ServerApp.ip=127.0.0.1", $"--ServerApp.port={jupyterPort}", "--ServerApp.port_retries=0",
            "--ServerApp.token=", "--ServerApp.password=", "--ServerApp.base_url=/user/bench/jup/", "--ServerApp.open_browser=False",
            $"--ServerApp.root_dir={jupyterDir}", "--ServerApp.disable_check_xsrf=True", "--allow-root",
        ], env: new() { ["JUPYTER_CONFIG_DIR"] = jupyterDir, ["JUPYTER_DATA_DIR"] = jupyterDir, ["JUPYTER_RUNTIME_DIR"] = jupyterDir, ["HOME"] = jupyterDir });
        var staticUrl = $"http://127.0.0.1:{staticPort}";
        var jupyterUrl = $"http://127.0.0.1:{jupyterPort}";

        // configurable-http-proxy on its own: the static upstream by default, the Jupyter server under its base URL.
        var chpPort = FreePort();
        var chpApi = FreePort();
        var chpToken = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16));
        var chpProcess = Spawn("chp", chp,
            ["--ip", "127.0.0.1", "--port", $"{chpPort}", "--api-ip", "127.0.0.1", "--api-port", $"{chpApi}", "--default-target", staticUrl],
            env: new() { ["CONFIGPROXY_AUTH_TOKEN"] = chpToken });

        // The hub: its own process, default logging, a backend whose workspaces are the same upstreams.
        var hubPort = FreePort();
        var hubDir = Path.Combine(_root, "hub");
        var hubProcess = Spawn("hub", "dotnet",
            [self, "serve-peer-hub", hubDir, $"{hubPort}", staticUrl, jupyterUrl]);

        // JupyterHub 3 with its own CHP.
        var jhPort = FreePort();
        var jhDir = Directory.CreateDirectory(Path.Combine(_root, "jupyterhub")).FullName;
        await File.WriteAllTextAsync(Path.Combine(jhDir, "jupyterhub_config.py"), JupyterHubConfig(jhDir, jhPort, FreePort(), FreePort(), chp), ct);
        var jh = Spawn("jupyterhub", "/usr/bin/jupyterhub", ["-f", Path.Combine(jhDir, "jupyterhub_config.py")], cwd: jhDir,
            env: new() { ["CONFIGPROXY_AUTH_TOKEN"] = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16)) });

        using var http = new HttpClient(new SocketsHttpHandler { UseProxy = false, UseCookies = false }) { Timeout = TimeSpan.FromMinutes(5) };
        await WaitAsync(http, $"{staticUrl}/", null, statik, ct);
        var haveJupyter = await WaitAsync(http, $"{jupyterUrl}/user/bench/jup/api/status", null, jupyter, ct, required: false);
        if (!haveJupyter)
        {
            _notes.Add("real Jupyter: python3 -m jupyter_server did not start (apt-get install python3-jupyter-server): its rows are left out. " + Tail("jupyter"));
        }

        await WaitAsync(http, $"http://127.0.0.1:{chpApi}/api/routes", chpToken, chpProcess, ct);
        using (var add = new HttpRequestMessage(HttpMethod.Post, $"http://127.0.0.1:{chpApi}/api/routes/user/bench/jup")
               { Content = JsonContent.Create(new { target = jupyterUrl }) })
        {
            add.Headers.TryAddWithoutValidation("Authorization", $"token {chpToken}");
            (await http.SendAsync(add, ct)).EnsureSuccessStatusCode();
        }

        var ready = Path.Combine(hubDir, "ready.json");
        Log.Say($"hub: creating {Users} users and {Owners * WorkspacesPerOwner} workspaces (fake backend pointing at the upstreams)");
        var deadline = Stopwatch.StartNew();
        while (!File.Exists(ready))
        {
            if (hubProcess.HasExited || deadline.Elapsed > TimeSpan.FromMinutes(4))
            {
                throw new DsvmException("the hub did not get ready: " + Tail("hub"));
            }

            await Task.Delay(200, ct);
        }

        var hubInfo = JsonSerializer.Deserialize<JsonElement>(await File.ReadAllTextAsync(ready, ct));
        var hubUrl = $"http://127.0.0.1:{hubPort}";
        var userToken = hubInfo.GetProperty("user").GetString()!;
        var adminToken = hubInfo.GetProperty("admin").GetString()!;

        var jhUrl = $"http://127.0.0.1:{jhPort}";
        await WaitAsync(http, $"{jhUrl}/hub/api/", null, jh, ct);
        Log.Say($"JupyterHub: creating {Users} users");
        using (var add = new HttpRequestMessage(HttpMethod.Post, $"{jhUrl}/hub/api/users")
               { Content = JsonContent.Create(new { usernames = Enumerable.Range(1, Users).Select(i => $"u{i:0000}").ToArray() }) })
        {
            add.Headers.TryAddWithoutValidation("Authorization", $"token {ServiceToken}");
            using var r = await http.SendAsync(add, ct);
            if (!r.IsSuccessStatusCode)
            {
                throw new DsvmException($"JupyterHub POST /hub/api/users: {(int)r.StatusCode} {await r.Content.ReadAsStringAsync(ct)}");
            }
        }

        var jhChp = Children(jh.Id).FirstOrDefault();
        var hubLogBefore = LineCount("hub");

        // Cases: (name, [(target, url, header, process whose CPU counts)]).
        var proxyCases = new List<(string Case, int C, List<Target> Targets)>();
        foreach (var c in new[] { 10, 100 })
        {
            proxyCases.Add(($"static upstream, c={c}", c,
            [
                new("direct", $"{staticUrl}/user/bench/static/api/status", null, statik.Id),
                new("chp", $"http://127.0.0.1:{chpPort}/user/bench/static/api/status", null, chpProcess.Id),
                new("hub", $"{hubUrl}/user/bench/static/api/status", $"Authorization: token {userToken}", hubProcess.Id),
            ]));
            if (haveJupyter)
            {
                proxyCases.Add(($"Jupyter api/status, c={c}", c,
                [
                    new("direct", $"{jupyterUrl}/user/bench/jup/api/status", null, jupyter.Id),
                    new("chp", $"http://127.0.0.1:{chpPort}/user/bench/jup/api/status", null, chpProcess.Id),
                    new("hub", $"{hubUrl}/user/bench/jup/api/status", $"Authorization: token {userToken}", hubProcess.Id),
                ]));
            }
        }

        List<Target> apiTargets =
        [
            new("jupyterhub GET /hub/api/users", $"{jhUrl}/hub/api/users", $"Authorization: token {ServiceToken}", jh.Id),
            new("hub GET /api/v1/users", $"{hubUrl}/api/v1/users", $"Authorization: token {adminToken}", hubProcess.Id),
            new("hub GET /api/v1/workspaces?all=true", $"{hubUrl}/api/v1/workspaces?all=true", $"Authorization: token {adminToken}", hubProcess.Id),
            new("hub GET /api/v1/workspaces (own 10)", $"{hubUrl}/api/v1/workspaces", $"Authorization: token {userToken}", hubProcess.Id),
        ];

        var results = new Dictionary<(string Case, string Target), List<Measured>>();
        for (var round = 0; round < Rounds; round++)
        {
            Log.Say($"round {round + 1} of {Rounds}");
            foreach (var (name, c, targets) in proxyCases)
            {
                foreach (var t in Rotate(targets, round))
                {
                    Add(results, name, t.Name, await MeasureAsync(t, c, ct));
                }

                Console.WriteLine(RatioLine(round, name, results));
            }

            foreach (var t in Rotate(apiTargets, round))
            {
                Add(results, "API, 1,000 users, c=10", t.Name, await MeasureAsync(t, 10, ct, Math.Max(Seconds, 5)));
            }

            Console.WriteLine(ApiLine(round, results));
        }

        var hubLogLines = LineCount("hub") - hubLogBefore;
        var hubRss = RssMiB(hubProcess.Id);
        var jhRss = RssMiB(jh.Id);
        var jhChpRss = jhChp is { } pid ? RssMiB(pid) : null;

        Console.WriteLine();
        Console.WriteLine($"Medians over {Rounds} round(s), {Seconds} s per wrk run (after a 1 s warm-up); {System.Environment.ProcessorCount} CPUs shared by wrk and every server.");
        Console.WriteLine();
        Console.WriteLine("| case | target | req/s | p50 ms | p99 ms | proxy/server CPU ms per 1,000 req | errors (all rounds) |");
        Console.WriteLine("|---|---|---|---|---|---|---|");
        foreach (var ((name, target), list) in results)
        {
            Console.WriteLine($"| {name} | {target} | {F(Median(list, m => m.Rps), "0")} | {F(Median(list, m => m.P50), "0.00")} | {F(Median(list, m => m.P99), "0.00")} | {F(Median(list, m => m.CpuMsPer1000), "0")} | {list.Sum(m => m.Errors)} |");
        }

        Console.WriteLine();
        Console.WriteLine("| ratio (median of per-round ratios) | value |");
        Console.WriteLine("|---|---|");
        foreach (var (name, _, _) in proxyCases)
        {
            var rounds = Enumerable.Range(0, Rounds).ToList();
            double? R(string a, string b, Func<Measured, double?> f) => MedianOf(rounds.Select(i => Ratio(results, name, a, b, i, f)));
            Console.WriteLine($"| {name}: hub / CHP req/s | {F(R("hub", "chp", m => m.Rps), "0.00")}× |");
            Console.WriteLine($"| {name}: hub / direct req/s | {F(R("hub", "direct", m => m.Rps), "0.00")}× |");
            Console.WriteLine($"| {name}: hub p99 − direct p99 | {F(MedianOf(rounds.Select(i => Diff(results, name, "hub", "direct", i, m => m.P99))), "0.00")} ms |");
            Console.WriteLine($"| {name}: hub CPU / CHP CPU per request | {F(R("hub", "chp", m => m.CpuMsPer1000), "0.00")} |");
        }

        const string api = "API, 1,000 users, c=10";
        foreach (var t in apiTargets.Skip(1))
        {
            var v = MedianOf(Enumerable.Range(0, Rounds).Select(i => Ratio(results, api, t.Name, apiTargets[0].Name, i, m => m.Rps)));
            Console.WriteLine($"| {t.Name} / JupyterHub users req/s | {F(v, "0.0")}× |");
        }

        Console.WriteLine();
        Console.WriteLine("| RSS after the load | MiB |");
        Console.WriteLine("|---|---|");
        Console.WriteLine($"| hub (1,000 users, 200 workspaces routed) | {F(hubRss, "0")} |");
        Console.WriteLine($"| JupyterHub (1,000 users) | {F(jhRss, "0")} |");
        Console.WriteLine($"| its configurable-http-proxy | {F(jhChpRss, "0")} |");
        Console.WriteLine($"| JupyterHub + CHP | {F(jhRss + jhChpRss, "0")} |");
        Console.WriteLine($"| hub / (JupyterHub + CHP) | {F(hubRss / (jhRss + jhChpRss), "0.00")} |");
        Console.WriteLine();
        Console.WriteLine($"hub log lines written during all load runs (default logging): {hubLogLines}");
        foreach (var n in _notes)
        {
            Console.WriteLine("note: " + n);
        }

        return 0;
    }

    private sealed record Target(string Name, string Url, string? Header, int Pid);

    private sealed record Measured(double? Rps, double? P50, double? P99, double? CpuMsPer1000, long Errors);

    private static IEnumerable<T> Rotate<T>(List<T> list, int round) =>
        list.Skip(round % list.Count).Concat(list.Take(round % list.Count));

    private static void Add(Dictionary<(string, string), List<Measured>> results, string name, string target, Measured m)
    {
        if (!results.TryGetValue((name, target), out var list))
        {
            results[(name, target)] = list = [];
        }

        list.Add(m);
    }

    private async Task<Measured> MeasureAsync(Target t, int connections, CancellationToken ct, int? seconds = null)
    {
        var duration = seconds ?? Seconds;
        Log.Say($"wrk -c{connections} {duration} s: {t.Name} {t.Url}");
        await WrkAsync(t, connections, 1, ct);
        var cpu0 = CpuSeconds(t.Pid);
        var (output, rc) = await WrkAsync(t, connections, duration, ct);
        var cpu1 = CpuSeconds(t.Pid);
        var row = HubSuite.ParseWrk(t.Name, output, rc, duration);
        if (row.Errors > 0 || row.Note is not null || row.Requests is null or 0)
        {
            Log.Say($"warning: {t.Name} c={connections}: {row.Requests} requests, {row.Errors} errors (non-2xx, socket errors, timeouts) {row.Note}");
        }

        var cpuMs = row.Requests is > 0 && cpu0 is { } a && cpu1 is { } b ? (b - a) * 1000 / row.Requests.Value * 1000 : (double?)null;
        return new Measured(row.RequestsPerSecond, row.P50Ms, row.P99Ms, cpuMs, row.Errors);
    }

    private static async Task<(string, int)> WrkAsync(Target t, int connections, int seconds, CancellationToken ct)
    {
        var psi = new ProcessStartInfo("wrk") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in new[] { "-t2", $"-c{connections}", $"-d{seconds}s", "--latency", "--timeout", "10s" })
        {
            psi.ArgumentList.Add(a);
        }

        if (t.Header is not null)
        {
            psi.ArgumentList.Add("-H");
            psi.ArgumentList.Add(t.Header);
        }

        psi.ArgumentList.Add(t.Url);
        using var p = Process.Start(psi) ?? throw new DsvmException("wrk did not start");
        var stdout = p.StandardOutput.ReadToEndAsync(ct);
        var stderr = p.StandardError.ReadToEndAsync(ct);
        using var bound = CancellationTokenSource.CreateLinkedTokenSource(ct);
        bound.CancelAfter(TimeSpan.FromSeconds(seconds + 30));
        await p.WaitForExitAsync(bound.Token);
        return (await stdout + await stderr, p.ExitCode);
    }

    private static string RatioLine(int round, string name, Dictionary<(string, string), List<Measured>> results) =>
        $"round {round + 1} | {name} | hub/CHP req/s {F(Ratio(results, name, "hub", "chp", round, m => m.Rps), "0.00")} "
        + $"| hub/direct req/s {F(Ratio(results, name, "hub", "direct", round, m => m.Rps), "0.00")} "
        + $"| p99 hub−direct {F(Diff(results, name, "hub", "direct", round, m => m.P99), "0.00")} ms "
        + $"| CPU/req hub/CHP {F(Ratio(results, name, "hub", "chp", round, m => m.CpuMsPer1000), "0.00")} "
        + $"| req/s direct {F(At(results, name, "direct", round)?.Rps, "0")} chp {F(At(results, name, "chp", round)?.Rps, "0")} hub {F(At(results, name, "hub", round)?.Rps, "0")}";

    private static string ApiLine(int round, Dictionary<(string, string), List<Measured>> results)
    {
        const string api = "API, 1,000 users, c=10";
        var jh = At(results, api, "jupyterhub GET /hub/api/users", round);
        var users = At(results, api, "hub GET /api/v1/users", round);
        var all = At(results, api, "hub GET /api/v1/workspaces?all=true", round);
        return $"round {round + 1} | {api} | JupyterHub users {F(jh?.Rps, "0.0")} req/s | hub users {F(users?.Rps, "0")} req/s ({F(users?.Rps / jh?.Rps, "0.0")}×) "
            + $"| hub workspaces?all=true {F(all?.Rps, "0")} req/s p99 {F(all?.P99, "0.0")} ms ({F(all?.Rps / jh?.Rps, "0.0")}×)";
    }

    private static Measured? At(Dictionary<(string, string), List<Measured>> results, string name, string target, int round) =>
        results.TryGetValue((name, target), out var l) && l.Count > round ? l[round] : null;

    private static double? Ratio(Dictionary<(string, string), List<Measured>> results, string name, string a, string b, int round, Func<Measured, double?> f) =>
        At(results, name, a, round) is { } x && At(results, name, b, round) is { } y && f(x) is { } fx && f(y) is { } fy && fy > 0 ? fx / fy : null;

    private static double? Diff(Dictionary<(string, string), List<Measured>> results, string name, string a, string b, int round, Func<Measured, double?> f) =>
        At(results, name, a, round) is { } x && At(results, name, b, round) is { } y && f(x) is { } fx && f(y) is { } fy ? fx - fy : null;

    private static double? Median(List<Measured> list, Func<Measured, double?> f) => MedianOf(list.Select(f));

    private static double? MedianOf(IEnumerable<double?> values)
    {
        var v = values.OfType<double>().Order().ToArray();
        return v.Length == 0 ? null : v.Length % 2 == 1 ? v[v.Length / 2] : (v[(v.Length / 2) - 1] + v[v.Length / 2]) / 2;
    }

    private static string F(double? v, string format) => v is { } x ? x.ToString(format, CultureInfo.InvariantCulture) : "–";

    // ---------------------------------------------------------------- processes and /proc

    private Process Spawn(string name, string file, IEnumerable<string> args, Dictionary<string, string>? env = null, string? cwd = null)
    {
        // exec through sh so the process is the server itself (its /proc is what is measured) and its output goes to a file.
        var psi = new ProcessStartInfo("/bin/sh") { UseShellExecute = false, WorkingDirectory = cwd ?? _root };
        psi.ArgumentList.Add("-c");
        psi.ArgumentList.Add("exec \"$0\" \"$@\" >\"$DSVM_BENCH_LOG\" 2>&1");
        psi.ArgumentList.Add(file);
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }

        psi.Environment["DSVM_BENCH_LOG"] = LogPath(name);
        foreach (var (k, v) in env ?? [])
        {
            psi.Environment[k] = v;
        }

        var p = Process.Start(psi) ?? throw new DsvmException($"{file} did not start");
        _children.Add(p);
        return p;
    }

    private string LogPath(string name) => Path.Combine(_root, name + ".log");

    private string Tail(string name)
    {
        try
        {
            return string.Join(" / ", File.ReadLines(LogPath(name)).TakeLast(5));
        }
        catch (IOException)
        {
            return "";
        }
    }

    private long LineCount(string name)
    {
        try
        {
            return File.ReadLines(LogPath(name)).LongCount();
        }
        catch (IOException)
        {
            return 0;
        }
    }

    private static void Stop(Process p)
    {
        try
        {
            if (!p.HasExited)
            {
                p.Kill(entireProcessTree: true);
                p.WaitForExit(10_000);
            }
        }
        catch (InvalidOperationException)
        {
        }
        finally
        {
            p.Dispose();
        }
    }

    private async Task<bool> WaitAsync(HttpClient http, string url, string? token, Process process, CancellationToken ct, bool required = true)
    {
        var sw = Stopwatch.StartNew();
        while (sw.Elapsed < TimeSpan.FromSeconds(90))
        {
            if (process.HasExited)
            {
                break;
            }

            try
            {
                using var m = new HttpRequestMessage(HttpMethod.Get, url);
                if (token is not null)
                {
                    m.Headers.TryAddWithoutValidation("Authorization", $"token {token}");
                }

                using var r = await http.SendAsync(m, ct);
                if ((int)r.StatusCode < 500)
                {
                    return true;
                }
            }
            catch (HttpRequestException)
            {
            }

            await Task.Delay(200, ct);
        }

        return required ? throw new DsvmException($"{url} did not answer: {Tail(Path.GetFileNameWithoutExtension(process.StartInfo.Environment["DSVM_BENCH_LOG"])!)}") : false;
    }

    private static int FreePort()
    {
        using var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        return ((IPEndPoint)l.LocalEndpoint).Port;
    }

    /// <summary>utime + stime of a process, in seconds (/proc/PID/stat fields 14 and 15).</summary>
    private static double? CpuSeconds(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            var f = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            return (long.Parse(f[11], CultureInfo.InvariantCulture) + long.Parse(f[12], CultureInfo.InvariantCulture)) / (double)ClockTicks;
        }
        catch (IOException)
        {
            return null;
        }
    }

    private static double? RssMiB(int pid)
    {
        try
        {
            var line = File.ReadLines($"/proc/{pid}/status").FirstOrDefault(l => l.StartsWith("VmRSS:", StringComparison.Ordinal));
            return line is null ? null : long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) / 1024.0;
        }
        catch (IOException)
        {
            return null;
        }
    }

    private static IEnumerable<int> Children(int pid)
    {
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), out var child))
            {
                continue;
            }

            string stat;
            try
            {
                stat = File.ReadAllText(Path.Combine(dir, "stat"));
            }
            catch (IOException)
            {
                continue;
            }
            catch (UnauthorizedAccessException)
            {
                continue;
            }

            var f = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            if (f.Length > 1 && f[1] == pid.ToString(CultureInfo.InvariantCulture))
            {
                yield return child;
            }
        }
    }

    private static string JupyterHubConfig(string dir, int port, int hubPort, int proxyApiPort, string chp) => $$"""
        c.JupyterHub.ip = '127.0.0.1'
        c.JupyterHub.port = {{port}}
        c.JupyterHub.hub_ip = '127.0.0.1'
        c.JupyterHub.hub_port = {{hubPort}}
        c.ConfigurableHTTPProxy.api_url = 'http://127.0.0.1:{{proxyApiPort}}'
        c.ConfigurableHTTPProxy.command = ['{{chp}}']
        c.JupyterHub.db_url = 'sqlite:///{{dir}}/jupyterhub.sqlite'
        c.JupyterHub.cookie_secret_file = '{{dir}}/jupyterhub_cookie_secret'
        c.JupyterHub.pid_file = '{{dir}}/jupyterhub.pid'
        c.JupyterHub.authenticator_class = 'dummy'
        c.JupyterHub.cleanup_servers = True
        c.JupyterHub.services = [{'name': 'bench', 'api_token': '{{ServiceToken}}'}]
        c.JupyterHub.load_roles = [{'name': 'bench', 'scopes': ['admin:users'], 'services': ['bench']}]
        # Every user in one answer, as the hub's GET /api/v1/users gives them.
        c.JupyterHub.api_page_default_limit = {{Users + 100}}
        c.JupyterHub.api_page_max_limit = {{Users + 100}}
        """;

    // ---------------------------------------------------------------- child processes

    /// <summary>The trivial static upstream: every path answers the fake Jupyter's 1 KiB status JSON.</summary>
    public static async Task<int> ServeStaticAsync(int port)
    {
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { ContentRootPath = AppContext.BaseDirectory });
        builder.WebHost.UseUrls($"http://127.0.0.1:{port}");
        builder.WebHost.ConfigureKestrel(k => k.AddServerHeader = false);
        builder.Logging.ClearProviders();
        var app = builder.Build();
        var body = FakeJupyterServer.StatusBody;
        app.Run(ctx =>
        {
            ctx.Response.ContentType = "application/json";
            ctx.Response.ContentLength = body.Length;
            return ctx.Response.Body.WriteAsync(body).AsTask();
        });
        await app.RunAsync();
        return 0;
    }

    /// <summary>
    /// The hub as `dsvm hub serve` runs it (default logging and options) but on a backend whose workspaces are the
    /// benchmark's upstreams: bench/jup is the Jupyter server, every other workspace the static one. Writes ready.json
    /// (the tokens) once it has 1,000 users and 200 running workspaces.
    /// </summary>
    public static async Task<int> ServeHubAsync(string dir, int port, string staticUrl, string jupyterUrl)
    {
        var paths = new DsvmPaths(Path.Combine(dir, "data"), Path.Combine(dir, "cache")).EnsureCreated();
        var options = new HubOptions
        {
            Listen = $"http://127.0.0.1:{port}",
            AdminName = "admin",
            AdminPassword = "bench-admin-password-1",
            MaxConcurrentStarts = Owners * WorkspacesPerOwner,
            DefaultQuota = new Quota { MaxWorkspaces = null, MaxVcpus = null, MaxGpus = null },
        };
        var app = HubHost.Build(options, new HubDependencies
        {
            Backend = new UpstreamBackend(new Uri(staticUrl), new Uri(jupyterUrl)),
            Store = new SqliteWorkspaceStore(paths.Database),
            Gpus = new NoGpus(),
            Environments = new StaticEnvironmentCatalog([new HubEnvironment("minimal", "dsvm/minimal:fake", GpuMode.None, "upstream", 0)]),
            Paths = paths,
            Probe = new AlwaysReady(),
        });
        await HubHost.InitializeAsync(app, CancellationToken.None);
        await app.StartAsync();
        var accounts = app.Services.GetRequiredService<Accounts>();
        var ct = CancellationToken.None;
        var admin = await accounts.FindUserAsync("admin", ct) ?? throw new DsvmException("no admin");
        var (adminToken, _) = await accounts.CreateTokenAsync(admin, "bench", Scopes.All, TimeSpan.FromDays(1), ct);
        var owners = new List<(string Name, string Token)>();
        for (var i = 0; i < Users - 1; i++)
        {
            var name = i == 0 ? "bench" : $"u{i:0000}";
            var user = await accounts.CreateExternalUserAsync(name, "https://bench.invalid", name, isAdmin: false, quota: null, ct);
            if (owners.Count < Owners)
            {
                owners.Add((name, (await accounts.CreateTokenAsync(user, "bench", [Scopes.Read, Scopes.Workspaces], TimeSpan.FromDays(1), ct)).Secret));
            }
        }

        using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}/") };
        foreach (var (owner, token) in owners)
        {
            var names = owner == "bench" ? new[] { "static", "jup" }.Concat(Enumerable.Range(3, WorkspacesPerOwner - 2).Select(i => $"w{i}")) : Enumerable.Range(1, WorkspacesPerOwner).Select(i => $"w{i}");
            await Task.WhenAll(names.Select(async name =>
            {
                using var m = new HttpRequestMessage(HttpMethod.Post, "api/v1/workspaces?wait=true") { Content = JsonContent.Create(new { name, environment = "minimal", size = "small" }) };
                m.Headers.TryAddWithoutValidation("Authorization", $"token {token}");
                using var r = await http.SendAsync(m, ct);
                if (!r.IsSuccessStatusCode)
                {
                    throw new DsvmException($"starting {owner}/{name}: {(int)r.StatusCode} {await r.Content.ReadAsStringAsync(ct)}");
                }
            }));
        }

        // Warm every route once, as a real hub's routes are after use.
        foreach (var (owner, token) in owners)
        {
            foreach (var name in owner == "bench" ? ["static"] : Enumerable.Range(1, WorkspacesPerOwner).Select(i => $"w{i}"))
            {
                using var m = new HttpRequestMessage(HttpMethod.Get, $"user/{owner}/{name}/api/status");
                m.Headers.TryAddWithoutValidation("Authorization", $"token {token}");
                using var r = await http.SendAsync(m, ct);
            }
        }

        await File.WriteAllTextAsync(Path.Combine(dir, "ready.json.tmp"),
            JsonSerializer.Serialize(new { admin = adminToken, user = owners[0].Token }), ct);
        File.Move(Path.Combine(dir, "ready.json.tmp"), Path.Combine(dir, "ready.json"));
        await app.WaitForShutdownAsync();
        return 0;
    }

    private sealed class AlwaysReady : IReadinessProbe
    {
        public Task<bool> IsReadyAsync(Uri endpoint, string baseUrl, string token, CancellationToken ct) => Task.FromResult(true);
    }

    /// <summary>Workspaces that are the benchmark's upstream servers: nothing is started, every one is running.</summary>
    private sealed class UpstreamBackend(Uri statik, Uri jupyter) : IWorkspaceBackend
    {
        private readonly System.Collections.Concurrent.ConcurrentDictionary<string, Uri> _running = new(StringComparer.Ordinal);

        public string Name => "upstream";

        public Task<WorkspaceLaunch> StartAsync(WorkspaceStartRequest request, IProgress<WorkspaceProgress>? progress, CancellationToken ct)
        {
            var endpoint = request.BaseUrl.EndsWith("/jup/", StringComparison.Ordinal) ? jupyter : statik;
            _running[request.Id] = endpoint;
            return Task.FromResult(new WorkspaceLaunch(Handle(request.Id), endpoint));
        }

        private WorkspaceHandle Handle(string id) => new(id, Name, JsonSerializer.SerializeToElement(new { id }));

        public Task StopAsync(WorkspaceHandle handle, CancellationToken ct)
        {
            _running.TryRemove(handle.Id, out _);
            return Task.CompletedTask;
        }

        public Task<WorkspaceStatus> GetStatusAsync(WorkspaceHandle handle, CancellationToken ct) =>
            Task.FromResult(_running.TryGetValue(handle.Id, out var e) ? new WorkspaceStatus(true, true, "running", e) : new WorkspaceStatus(false, false, "not found"));

        public Task DeleteAsync(WorkspaceHandle handle, string homeVolume, bool keepHome, CancellationToken ct) => StopAsync(handle, ct);

        public Task<string> GetLogsAsync(WorkspaceHandle handle, int tailLines, CancellationToken ct) => Task.FromResult("");

        public async IAsyncEnumerable<ManagedResource> ListManagedAsync([EnumeratorCancellation] CancellationToken ct)
        {
            foreach (var id in _running.Keys.ToList())
            {
                await Task.Yield();
                yield return new ManagedResource(id, id, true, Handle(id));
            }
        }

        public Task<bool> HomeExistsAsync(string homeVolume, CancellationToken ct) => Task.FromResult(false);

        public Task<HostCapacity> GetCapacityAsync(CancellationToken ct) => Task.FromResult(new HostCapacity(1024, 4096L * 1024 * 1024 * 1024, 0));
    }
}
