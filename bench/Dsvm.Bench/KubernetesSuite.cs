using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Security.Cryptography;
using Dsvm.Core;
using Dsvm.Core.Sizes;
using Dsvm.Core.Specs;
using Dsvm.Core.Workspaces;
using Dsvm.Data;
using Dsvm.Docker;
using Dsvm.Hub;
using Dsvm.Hub.Services;
using Dsvm.Images;
using Dsvm.Kubernetes;
using k8s;
using k8s.Models;
using Microsoft.AspNetCore.Builder;

namespace Dsvm.Bench;

/// <summary>
/// Issue 10's benchmark: N workspaces (the minimal environment, a tiny size) asked for at once through the hub on the
/// Kubernetes lab cluster (scripts/kubernetes-lab.sh: one node whose kubelet runs pods on this machine's Docker engine),
/// the time until each answers through the hub's proxy, side by side with the same N through a hub on the local Docker
/// backend in the same run (order alternated per round). Then the Kubernetes hub is replaced (a new hub process over
/// the same state, as a replaced hub pod is: HubOnClusterTests replaces the real pod) and the time until every
/// workspace answers through the new hub's proxy again. The hubs are the real <c>HubHost</c> in this process, default
/// options (10 starts in flight, 429 + Retry-After beyond).
/// </summary>
internal sealed class KubernetesSuite(BenchOptions options, BenchHome home, ImageServices images) : IDisposable
{
    private const string Environment = WorkspaceSuite.Environment;
    private static readonly TimeSpan Poll = TimeSpan.FromMilliseconds(250);
    private static readonly TimeSpan Bound = TimeSpan.FromMinutes(10);

    private readonly List<string> _notes = [];
    private readonly string _run = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(2));
    private readonly HttpClient _probe = new(new SocketsHttpHandler { UseCookies = false, UseProxy = false, AllowAutoRedirect = false }) { Timeout = TimeSpan.FromSeconds(5) };

    /// <summary>A running hub and what it was built from (a replacement is built from the same).</summary>
    private sealed record Hub(WebApplication App, Uri Address, HttpClient Api, string User, HubOptions Options, HubDependencies Dependencies);

    public void Dispose() => _probe.Dispose();

    /// <summary>Small enough that N fit the one lab node's CPUs as requests (requests = limits, Guaranteed QoS).</summary>
    private MachineSize Tiny => new("bench-k8s-tiny", Math.Max(0.05, Math.Floor(150.0 / options.KubernetesWorkspaces) / 100), 0.25, 0, SizeClass.General, "benchmark size");

    public async Task<int> RunAsync(CancellationToken ct)
    {
        var kubeconfig = System.Environment.GetEnvironmentVariable("KUBECONFIG") is { Length: > 0 } k ? k.Split(Path.PathSeparator)[0] : null;
        if (kubeconfig is null)
        {
            throw new EnvironmentNotReadyException("the kubernetes suite needs a cluster: KUBECONFIG is not set (bench/run.sh --suite kubernetes starts the lab)");
        }

        await images.Docker.EnsureEngineAsync(ct);
        var latest = await LatestTag.CaptureAsync(images.Docker, Environment, ct);
        using var client = new k8s.Kubernetes(KubernetesClientConfiguration.BuildConfigFromConfigFile(kubeconfig));
        var ns = $"dsvm-bench-{_run}";
        var rows = new List<(int Round, string Target, Summary? Each, double? All, int Failed, string? Error)>();
        double? replaced = null;
        string? replacedError = null;
        var hubs = new List<Hub>();
        string image = "";
        try
        {
            image = await WorkspaceSuite.EnsureMinimalImageAsync(home, images, latest, _notes, ct);
            await client.CoreV1.CreateNamespaceAsync(new V1Namespace { Metadata = new V1ObjectMeta { Name = ns } }, cancellationToken: ct);
            var gpus = new NvidiaGpuDetector();
            var docker = await StartHubAsync("docker", new DockerWorkspaceBackend(new DockerBackendOptions(), gpus), image, ct);
            hubs.Add(docker);
            var kubernetes = await StartHubAsync("kubernetes", new KubernetesWorkspaceBackend(client, new KubernetesBackendOptions
            {
                Namespace = ns, HomeSize = "1Gi", ImagePullPolicy = "Never", EndpointMode = KubernetesEndpointMode.PodIp,
            }), image, ct);
            hubs.Add(kubernetes);

            var n = options.KubernetesWorkspaces;
            for (var round = 1; round <= options.Rounds; round++)
            {
                var order = round % 2 == 1 ? new[] { (docker, "docker backend (this host)"), (kubernetes, "Kubernetes lab cluster") } : [(kubernetes, "Kubernetes lab cluster"), (docker, "docker backend (this host)")];
                foreach (var (hub, target) in order)
                {
                    var current = hub;
                    Log.Say($"round {round}: {n} workspaces at once through the hub, {target}");
                    var names = Enumerable.Range(1, n).Select(i => $"r{round}w{i:00}").ToList();
                    var (each, all, failed, error) = await StartAllAsync(hub, names, ct);
                    rows.Add((round, target, Summary.Of(each), all, failed, error));
                    Log.Say($"round {round}, {target}: all {n} answering after {all:0.0} s (p50 {Summary.Of(each)?.P50:0.0} s), {failed} failed");
                    if (hub == kubernetes && round == options.Rounds)
                    {
                        // The hub replaced while its workspaces run: a new process over the same state.
                        Log.Say($"replacing the Kubernetes hub; {n - failed} workspaces running");
                        (replaced, replacedError, current) = await ReplaceAsync(kubernetes, names, ct);
                        hubs[1] = current;
                    }

                    await DeleteAllAsync(current, names);
                }
            }
        }
        finally
        {
            foreach (var hub in hubs)
            {
                hub.Api.Dispose();
                await HubSuite.StopAsync(hub.App);
            }

            await CleanUpAsync(client, ns);
            if (await latest.RestoreAsync() is { } problem)
            {
                _notes.Add(problem);
            }
        }

        Print(rows, replaced, replacedError, image);
        return 0;
    }

    private async Task<Hub> StartHubAsync(string name, IWorkspaceBackend backend, string image, CancellationToken ct)
    {
        var paths = Fresh(name);
        var hubOptions = HubStarts.Options();
        var deps = new HubDependencies
        {
            Backend = backend,
            Store = new SqliteWorkspaceStore(paths.Database),
            Gpus = new NvidiaGpuDetector(),
            Environments = new StaticEnvironmentCatalog([new HubEnvironment(Environment, image, GpuMode.None, Environment, 0)]),
            Paths = paths,
            Sizes = new SizeCatalog([.. SizeCatalog.Defaults, Tiny]),
            WorkspaceOptions = new WorkspaceOptions { StartTimeout = Bound },
        };
        var app = await StartAppAsync(hubOptions, deps, ct);
        var address = new Uri(app.Urls.First().TrimEnd('/') + "/");
        using var admin = await HubSuite.LoginAsync(address, hubOptions.AdminName, hubOptions.AdminPassword!, ct);
        var user = $"bench-k{_run}";
        var token = await HubSuite.CreateUserWithTokenAsync(address, admin, user, ct);
        return new Hub(app, address, HubSuite.TokenClient(address, token), user, hubOptions, deps);
    }

    private static async Task<WebApplication> StartAppAsync(HubOptions hubOptions, HubDependencies deps, CancellationToken ct)
    {
        var app = HubHost.Build(hubOptions, deps, logging: _ => { });
        await HubHost.InitializeAsync(app, ct);
        await app.StartAsync(ct);
        return app;
    }

    private DsvmPaths Fresh(string name)
    {
        var root = Path.Combine(home.Root, "kubernetes-suite", name);
        if (Directory.Exists(root))
        {
            Directory.Delete(root, recursive: true);
        }

        return new DsvmPaths(Path.Combine(root, "data"), Path.Combine(root, "cache")).EnsureCreated();
    }

    /// <summary>All POSTs at once (after a 429, again when Retry-After says), each then asked through the proxy until Jupyter answers.</summary>
    private async Task<(List<double> Each, double? All, int Failed, string? Error)> StartAllAsync(Hub hub, List<string> names, CancellationToken ct)
    {
        var each = new List<double>();
        var errors = new List<string>();
        var sw = Stopwatch.StartNew();
        await Task.WhenAll(names.Select(async name =>
        {
            try
            {
                await HubStarts.PostAsync(hub.Api, name, Environment, Tiny.Name, ct);
                await UntilAnswersAsync(hub, name, ct);
                lock (each)
                {
                    each.Add(sw.Elapsed.TotalSeconds);
                }
            }
            catch (Exception ex) when (ex is DsvmException or HttpRequestException or TimeoutException)
            {
                lock (errors)
                {
                    errors.Add(ex.Message.Split('\n')[0]);
                }
            }
        }));
        return (each, errors.Count == 0 ? sw.Elapsed.TotalSeconds : null, errors.Count, errors.FirstOrDefault());
    }

    /// <summary>Stops the hub, starts a new one over the same state and backend, and times until every workspace answers through it.</summary>
    private async Task<(double?, string?, Hub)> ReplaceAsync(Hub hub, List<string> names, CancellationToken ct)
    {
        var token = hub.Api.DefaultRequestHeaders.Authorization!.Parameter!;
        await HubSuite.StopAsync(hub.App);
        hub.Api.Dispose();
        var sw = Stopwatch.StartNew();
        // A new process: its own handle on the same state file and accounts database.
        var deps = hub.Dependencies with { Store = new SqliteWorkspaceStore(hub.Dependencies.Paths.Database) };
        var app = await StartAppAsync(hub.Options, deps, ct);
        var address = new Uri(app.Urls.First().TrimEnd('/') + "/");
        var next = hub with { App = app, Address = address, Api = HubSuite.TokenClient(address, token), Dependencies = deps };
        try
        {
            await Task.WhenAll(names.Select(name => UntilAnswersAsync(next, name, ct)));
            return (sw.Elapsed.TotalSeconds, null, next);
        }
        catch (Exception ex) when (ex is TimeoutException or HttpRequestException)
        {
            return (null, ex.Message.Split('\n')[0], next);
        }
    }

    private Task UntilAnswersAsync(Hub hub, string name, CancellationToken ct) =>
        HubStarts.UntilAnswersAsync(_probe, new Uri(hub.Address, $"user/{hub.User}/{name}/api/status"), hub.Api.DefaultRequestHeaders.Authorization!.ToString(), Poll, Bound, ct);

    private async Task DeleteAllAsync(Hub hub, List<string> names)
    {
        using var gate = new SemaphoreSlim(4);
        await Task.WhenAll(names.Select(async name =>
        {
            await gate.WaitAsync(CancellationToken.None);
            try
            {
                using var r = await hub.Api.DeleteAsync($"api/v1/workspaces/{hub.User}/{name}?deleteHome=true", CancellationToken.None);
                if (!r.IsSuccessStatusCode && r.StatusCode != HttpStatusCode.NotFound)
                {
                    _notes.Add($"delete {name}: {(int)r.StatusCode}");
                }
            }
            catch (HttpRequestException ex)
            {
                _notes.Add($"delete {name}: {ex.Message}");
            }
            finally
            {
                gate.Release();
            }
        }));
    }

    private async Task CleanUpAsync(IKubernetes client, string ns)
    {
        try
        {
            await client.CoreV1.DeleteNamespaceAsync(ns, gracePeriodSeconds: 0, cancellationToken: CancellationToken.None);
        }
        catch (k8s.Autorest.HttpOperationException ex) when (ex.Response.StatusCode == HttpStatusCode.NotFound)
        {
        }

        // The docker hub's workspaces were deleted through it; anything left by a failed round goes by label.
        var left = await images.Docker.RunAsync(["ps", "-aq", "--filter", $"label={WorkspaceLabels.Owner}=bench-k{_run}"], CancellationToken.None);
        var ids = left.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        if (ids.Length > 0)
        {
            await images.Docker.RunAsync(["rm", "-f", "-v", .. ids], CancellationToken.None);
            _notes.Add($"removed {ids.Length} containers a failed round left");
        }
    }

    private void Print(List<(int Round, string Target, Summary? Each, double? All, int Failed, string? Error)> rows, double? replaced, string? replacedError, string image)
    {
        var inv = CultureInfo.InvariantCulture;
        var n = options.KubernetesWorkspaces;
        Console.WriteLine($"# kubernetes suite: {n} workspaces at once through the hub, size {Tiny.Name} ({Tiny.Vcpus.ToString(inv)} vCPU, {Tiny.MemoryGiB.ToString(inv)} GiB), image {image}, {options.Rounds} round(s), order alternated");
        Console.WriteLine();
        Console.WriteLine("| round | target | each until it answers through the proxy: p50 / p95 / max (s) | all answering (s) | ratio to the docker backend | failed |");
        Console.WriteLine("| --- | --- | --- | --- | --- | --- |");
        foreach (var r in rows.OrderBy(r => r.Round).ThenBy(r => r.Target, StringComparer.Ordinal))
        {
            var docker = rows.FirstOrDefault(d => d.Round == r.Round && d.Target.StartsWith("docker", StringComparison.Ordinal)).All;
            var ratio = r.All is { } all && docker is > 0 ? (all / docker.Value).ToString("0.00", inv) + "×" : "-";
            var each = r.Each is { } s ? string.Create(inv, $"{s.P50:0.0} / {s.P95:0.0} / {s.Max:0.0}") : "-";
            Console.WriteLine(string.Create(inv, $"| {r.Round} | {r.Target} | {each} | {(r.All is { } a ? a.ToString("0.0", inv) : "-")} | {ratio} | {r.Failed}{(r.Error is { } e ? $" ({e})" : "")} |"));
        }

        Console.WriteLine();
        Console.WriteLine(replaced is { } t
            ? string.Create(inv, $"Kubernetes hub replaced (new hub process over the same state) with {n} workspaces running: all answering through the new hub after {t:0.0} s.")
            : $"Kubernetes hub replaced: not every workspace answered through the new hub ({replacedError ?? "not measured"}).");
        foreach (var note in _notes)
        {
            Console.WriteLine();
            Console.WriteLine($"note: {note}");
        }
    }
}
