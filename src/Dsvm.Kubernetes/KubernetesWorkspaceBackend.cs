using System.Globalization;
using System.Net;
using System.Runtime.CompilerServices;
using System.Text.Json;
using Dsvm.Core;
using Dsvm.Core.Sizes;
using Dsvm.Core.Workspaces;
using k8s;
using k8s.Autorest;
using k8s.Models;

namespace Dsvm.Kubernetes;

/// <summary>
/// Workspaces as bare Pods of a Kubernetes cluster. Not a Deployment or StatefulSet: the workspace manager owns the
/// lifecycle (start, stop, resize, failure reporting), and a controller restarting or rescheduling the server behind
/// its back would fight it; a bare pod with <c>restartPolicy: Never</c> does exactly what the manager asks. Per
/// workspace: a Pod <c>dsvm-ID</c> (deleted on stop), a ClusterIP Service <c>dsvm-ID</c> and a Secret
/// <c>dsvm-ID-token</c> and a NetworkPolicy <c>dsvm-ID</c> (kept until delete), and a PersistentVolumeClaim named after the home volume that outlives
/// everything unless deleted explicitly. All carry <c>io.opendsvm.managed=true</c> and <c>io.opendsvm.workspace=ID</c>.
/// </summary>
public sealed class KubernetesWorkspaceBackend : IWorkspaceBackend, IDescribableBackend
{
    private readonly Lazy<IKubernetes> _client;
    private readonly KubernetesBackendOptions _options;
    private readonly TimeProvider _time;

    /// <summary>A backend on the cluster the options name; the configuration is read on first use, not here.</summary>
    public KubernetesWorkspaceBackend(KubernetesBackendOptions options, TimeProvider? time = null)
        : this(new Lazy<IKubernetes>(() => CreateClient(options, time ?? TimeProvider.System)), options, time) { }

    /// <summary>A backend on a given client (tests, or a host that configures the client itself).</summary>
    public KubernetesWorkspaceBackend(IKubernetes client, KubernetesBackendOptions options, TimeProvider? time = null)
        : this(new Lazy<IKubernetes>(client), options, time) { }

    private KubernetesWorkspaceBackend(Lazy<IKubernetes> client, KubernetesBackendOptions options, TimeProvider? time)
    {
        _client = client;
        _options = options;
        _time = time ?? TimeProvider.System;
        Validate(options);
    }

    public string Name => "kubernetes";

    /// <summary>Workspaces run on the cluster's nodes: this machine's GPUs do not count.</summary>
    public bool RunsOnThisHost => false;

    private static readonly string[] PullPolicies = ["Always", "IfNotPresent", "Never"];

    /// <summary>Bad settings are refused when the backend is made, each with what is wrong, not at the first start.</summary>
    private static void Validate(KubernetesBackendOptions options)
    {
        if (!(options.Namespace.Length <= 63 && KubernetesObjects.DnsLabel().IsMatch(options.Namespace)))
        {
            throw new UsageException($"Kubernetes namespace '{options.Namespace}' is not valid: use up to 63 lowercase letters, digits and '-'");
        }

        if (!ResourceQuantityIsValid(options.HomeSize))
        {
            throw new UsageException($"Kubernetes home size '{options.HomeSize}' is not a quantity such as 10Gi or 500Mi");
        }

        if (!PullPolicies.Contains(options.ImagePullPolicy, StringComparer.Ordinal))
        {
            throw new UsageException($"Kubernetes image pull policy '{options.ImagePullPolicy}' is not one of {string.Join(", ", PullPolicies)}");
        }

        // An empty selector would match every pod of the namespace, other users' workspaces included.
        if (options.HubPodLabels.Count == 0
            || options.HubPodLabels.Any(kv => !KubernetesObjects.IsValidLabelKey(kv.Key) || !KubernetesObjects.IsValidLabelValue(kv.Value)))
        {
            throw new UsageException("Kubernetes HubPodLabels must name at least one valid label of the hub's pods, such as app.kubernetes.io/name=dsvm-hub");
        }

        if (options.HubCidrs.FirstOrDefault(c => !IPNetwork.TryParse(c, out _)) is { } badCidr)
        {
            throw new UsageException($"Kubernetes HubCidrs entry '{badCidr}' is not an address range such as 10.0.0.0/24");
        }

        if (options.EndpointMode == KubernetesEndpointMode.Template
            && !Uri.TryCreate(Fill(options.EndpointTemplate ?? "", "x", "x", "x", "127.0.0.1", "x"), UriKind.Absolute, out _))
        {
            throw new UsageException("Kubernetes endpoint mode Template needs EndpointTemplate, an absolute URL such as http://{service}.{namespace}.example:{port}/");
        }
    }

    private static bool ResourceQuantityIsValid(string quantity)
    {
        try
        {
            return quantity.Length > 0 && new ResourceQuantity(quantity).ToDecimal() > 0;
        }
        catch (Exception ex) when (ex is FormatException or ArgumentException or OverflowException)
        {
            return false;
        }
    }

    private IKubernetes Client => _client.Value;

    private string Ns => _options.Namespace;

    /// <summary>
    /// The client: the kubeconfig named, else in-cluster, else KUBECONFIG or ~/.kube/config; every request bounded by
    /// <see cref="KubernetesBackendOptions.RequestTimeout"/> until its answer's headers (<see cref="AnswerTimeout"/>).
    /// </summary>
    public static IKubernetes CreateClient(KubernetesBackendOptions options, TimeProvider time)
    {
        try
        {
            var config = options.KubeconfigPath is { Length: > 0 } path
                ? KubernetesClientConfiguration.BuildConfigFromConfigFile(path)
                : KubernetesClientConfiguration.IsInCluster()
                    ? KubernetesClientConfiguration.InClusterConfig()
                    : KubernetesClientConfiguration.BuildConfigFromConfigFile(Environment.GetEnvironmentVariable("KUBECONFIG") is { Length: > 0 } k
                        ? k.Split(Path.PathSeparator)[0]
                        : null);
            // The client's own whole-request timeout (100 s) stays as the outer bound, above ours.
            if (options.RequestTimeout >= config.HttpClientTimeout)
            {
                config.HttpClientTimeout = options.RequestTimeout + TimeSpan.FromSeconds(30);
            }

            return new k8s.Kubernetes(config, new AnswerTimeout(options.RequestTimeout, time));
        }
        catch (Exception ex) when (ex is k8s.Exceptions.KubeConfigException or IOException or UnauthorizedAccessException or ArgumentException or InvalidOperationException)
        {
            throw new EnvironmentNotReadyException($"no usable Kubernetes configuration ({options.KubeconfigPath ?? "in-cluster, KUBECONFIG or ~/.kube/config"}): {ex.Message}");
        }
    }

    public async Task<WorkspaceLaunch> StartAsync(WorkspaceStartRequest request, IProgress<WorkspaceProgress>? progress, CancellationToken ct)
    {
        var pod = KubernetesObjects.Pod(request, _options);
        var podName = pod.Metadata.Name;

        if (!await HomeExistsAsync(request.HomeVolume, ct))
        {
            progress?.Report(new WorkspaceProgress($"creating home claim {request.HomeVolume} ({_options.HomeSize})"));
            await CreateAsync("home claim", request.HomeVolume,
                () => Client.CoreV1.CreateNamespacedPersistentVolumeClaimAsync(KubernetesObjects.HomeClaim(request, _options), Ns, cancellationToken: ct), ignoreConflict: true);
        }

        var secret = KubernetesObjects.Secret(request, _options);
        if (!await CreateAsync("token secret", secret.Metadata.Name, () => Client.CoreV1.CreateNamespacedSecretAsync(secret, Ns, cancellationToken: ct), ignoreConflict: true))
        {
            await CallAsync("replace", "token secret", secret.Metadata.Name,
                () => Client.CoreV1.ReplaceNamespacedSecretAsync(secret, secret.Metadata.Name, Ns, cancellationToken: ct));
        }

        var service = KubernetesObjects.Service(request, _options);
        await CreateAsync("service", service.Metadata.Name, () => Client.CoreV1.CreateNamespacedServiceAsync(service, Ns, cancellationToken: ct), ignoreConflict: true);

        // Before the pod exists, so that it is never reachable from other workspaces (where the network plugin enforces
        // it). Made again when it exists: the size (network: isolated or internet) may have changed since the last
        // start. Deleted and created rather than updated: the hub's Role has create and delete only (a hub upgraded
        // without new RBAC keeps working), and no pod of this workspace runs meanwhile but one a crash left, which
        // 60-networkpolicy.yaml's namespace-wide rule covers and which is deleted next.
        var policy = KubernetesObjects.NetworkPolicy(request, _options);
        if (!await CreateAsync("network policy", policy.Metadata.Name,
                () => Client.NetworkingV1.CreateNamespacedNetworkPolicyAsync(policy, Ns, cancellationToken: ct), ignoreConflict: true))
        {
            await DeleteAsync("network policy", policy.Metadata.Name,
                () => Client.NetworkingV1.DeleteNamespacedNetworkPolicyAsync(policy.Metadata.Name, Ns, cancellationToken: ct));
            await CreateAsync("network policy", policy.Metadata.Name,
                () => Client.NetworkingV1.CreateNamespacedNetworkPolicyAsync(policy, Ns, cancellationToken: ct), ignoreConflict: false);
        }

        // A pod left by a crash or a killed command: the home is separate, so it is safe to replace.
        await DeletePodsAsync(request.Id, ct);

        progress?.Report(new WorkspaceProgress($"creating pod {podName} in namespace {Ns}"));
        try
        {
            await Client.CoreV1.CreateNamespacedPodAsync(pod, Ns, cancellationToken: ct);
        }
        catch (HttpOperationException ex)
        {
            throw new WorkspaceStartException(ex.Response.StatusCode == HttpStatusCode.Forbidden && Message(ex).Contains("quota", StringComparison.OrdinalIgnoreCase)
                ? WorkspaceFailure.Capacity
                : WorkspaceFailure.Backend, $"Kubernetes refused pod {podName}: {Message(ex)}");
        }
        catch (HttpRequestException ex)
        {
            throw Unreachable(ex);
        }

        var handle = HandleFor(request.Id, podName);
        try
        {
            var running = await WaitRunningAsync(podName, progress, ct);
            return new WorkspaceLaunch(handle, EndpointOf(request.Id, running));
        }
        catch (OperationCanceledException)
        {
            // Timed out or given up while pending (a slow pull, a full cluster): no launch is returned, so no one else
            // would remove the pod; remove it now rather than leave it to start unrecorded.
            await DeletePodsAsync(request.Id, CancellationToken.None, wait: false);
            throw;
        }
    }

    /// <summary>Reads the pod until its server runs; fails at once on a bad image or crash, after a grace when unschedulable.</summary>
    private async Task<V1Pod> WaitRunningAsync(string podName, IProgress<WorkspaceProgress>? progress, CancellationToken ct)
    {
        var started = _time.GetTimestamp();
        string? last = null;
        while (true)
        {
            var pod = await ReadPodAsync(podName, ct)
                ?? throw new WorkspaceStartException(WorkspaceFailure.Backend, $"pod {podName} was deleted while starting");
            var view = PodStatusReader.Read(pod);
            if (view.Running && (_options.EndpointMode != KubernetesEndpointMode.PodIp || pod.Status?.PodIP is { Length: > 0 }))
            {
                return pod;
            }

            if (view.Failure is { } failure && (!view.Unschedulable || _time.GetElapsedTime(started) >= _options.UnschedulableGrace))
            {
                await DeletePodsAsync(IdOf(pod) ?? "", CancellationToken.None, wait: false);
                throw new WorkspaceStartException(failure, $"pod {podName} {view.Detail}");
            }

            if (view.Detail != last)
            {
                progress?.Report(new WorkspaceProgress($"pod {podName}: {view.Detail}"));
                last = view.Detail;
            }

            await Task.Delay(_options.PollInterval, _time, ct);
        }
    }

    private Uri EndpointOf(string id, V1Pod pod)
    {
        var port = KubernetesBackendOptions.JupyterPort;
        var service = KubernetesObjects.ServiceName(id);
        return _options.EndpointMode switch
        {
            KubernetesEndpointMode.PodIp => new Uri($"http://{pod.Status?.PodIP}:{port}/"),
            KubernetesEndpointMode.Template => new Uri(Fill(_options.EndpointTemplate!, service, Ns, pod.Metadata.Name, pod.Status?.PodIP ?? "", id)),
            _ => new Uri($"http://{service}.{Ns}.svc:{port}/"),
        };
    }

    private static string Fill(string template, string service, string ns, string pod, string podIp, string id) =>
        template.Replace("{service}", service, StringComparison.Ordinal)
            .Replace("{namespace}", ns, StringComparison.Ordinal)
            .Replace("{pod}", pod, StringComparison.Ordinal)
            .Replace("{podIp}", podIp, StringComparison.Ordinal)
            .Replace("{id}", id, StringComparison.Ordinal)
            .Replace("{port}", KubernetesBackendOptions.JupyterPort.ToString(CultureInfo.InvariantCulture), StringComparison.Ordinal);

    private WorkspaceHandle HandleFor(string id, string podName) =>
        new(id, Name, JsonSerializer.SerializeToElement(new { container = podName, pod = podName, @namespace = Ns }));

    private static string? IdOf(V1Pod pod) =>
        pod.Metadata?.Labels is { } l && l.TryGetValue(KubernetesObjects.WorkspaceLabel, out var id) ? id : null;

    private static string PodOf(WorkspaceHandle handle) =>
        handle.State.ValueKind == JsonValueKind.Object && handle.State.TryGetProperty("pod", out var p) && p.GetString() is { Length: > 0 } s
            ? s
            : KubernetesObjects.PodName(handle.Id);

    /// <summary>Deletes the workspace's pods (found by label, so a half-recorded start is cleaned up too); the home stays.</summary>
    public Task StopAsync(WorkspaceHandle handle, CancellationToken ct) => DeletePodsAsync(handle.Id, ct);

    private async Task DeletePodsAsync(string id, CancellationToken ct, bool wait = true)
    {
        if (id.Length == 0)
        {
            return;
        }

        var pods = await CallAsync("list", "pods", id,
            () => Client.CoreV1.ListNamespacedPodAsync(Ns, labelSelector: KubernetesObjects.SelectorOf(id), cancellationToken: ct));
        foreach (var p in pods.Items)
        {
            await DeleteAsync("pod", p.Metadata.Name,
                () => Client.CoreV1.DeleteNamespacedPodAsync(p.Metadata.Name, Ns, gracePeriodSeconds: 10, cancellationToken: ct));
        }

        if (!wait)
        {
            return;
        }

        // Wait until they are gone: a new pod of the same name (resize) and the ReadWriteOnce home need them gone.
        // A pod on a lost node never finishes terminating: after the grace period and a margin, delete it at once.
        var started = _time.GetTimestamp();
        foreach (var p in pods.Items)
        {
            var forced = false;
            while (await ReadPodAsync(p.Metadata.Name, ct) is { } still && still.Metadata.Uid == p.Metadata.Uid)
            {
                if (!forced && _time.GetElapsedTime(started) > _options.StopTimeout)
                {
                    await DeleteAsync("pod", p.Metadata.Name,
                        () => Client.CoreV1.DeleteNamespacedPodAsync(p.Metadata.Name, Ns, gracePeriodSeconds: 0, cancellationToken: ct));
                    forced = true;
                }

                await Task.Delay(_options.PollInterval, _time, ct);
            }
        }
    }

    private async Task<V1Pod?> ReadPodAsync(string name, CancellationToken ct)
    {
        try
        {
            return await Client.CoreV1.ReadNamespacedPodAsync(name, Ns, cancellationToken: ct);
        }
        catch (HttpOperationException ex) when (ex.Response.StatusCode == HttpStatusCode.NotFound)
        {
            return null;
        }
        catch (HttpOperationException ex)
        {
            throw Refused("read", "pod", name, ex);
        }
        catch (HttpRequestException ex)
        {
            throw Unreachable(ex);
        }
    }

    public async Task<WorkspaceStatus> GetStatusAsync(WorkspaceHandle handle, CancellationToken ct)
    {
        var pod = await ReadPodAsync(PodOf(handle), ct);
        if (pod is null)
        {
            return new WorkspaceStatus(false, false, "pod not found");
        }

        var view = PodStatusReader.Read(pod);
        return new WorkspaceStatus(true, view.Running, view.Detail, view.Running ? EndpointOf(handle.Id, pod) : null,
            view.Running && pod.Status?.StartTime is { } t ? IsoTime.Utc(t) : null);
    }

    public async Task DeleteAsync(WorkspaceHandle handle, string homeVolume, bool keepHome, CancellationToken ct)
    {
        await DeletePodsAsync(handle.Id, ct);
        var service = KubernetesObjects.ServiceName(handle.Id);
        await DeleteAsync("service", service, () => Client.CoreV1.DeleteNamespacedServiceAsync(service, Ns, cancellationToken: ct));
        var secret = KubernetesObjects.SecretName(handle.Id);
        await DeleteAsync("token secret", secret, () => Client.CoreV1.DeleteNamespacedSecretAsync(secret, Ns, cancellationToken: ct));
        var policy = KubernetesObjects.NetworkPolicyName(handle.Id);
        await DeleteAsync("network policy", policy, () => Client.NetworkingV1.DeleteNamespacedNetworkPolicyAsync(policy, Ns, cancellationToken: ct));
        if (!keepHome)
        {
            await DeleteAsync("home claim", homeVolume, () => Client.CoreV1.DeleteNamespacedPersistentVolumeClaimAsync(homeVolume, Ns, cancellationToken: ct));
        }
    }

    public async Task<string> GetLogsAsync(WorkspaceHandle handle, int tailLines, CancellationToken ct)
    {
        try
        {
            using var stream = await Client.CoreV1.ReadNamespacedPodLogAsync(PodOf(handle), Ns, container: KubernetesObjects.ContainerName,
                tailLines: tailLines, cancellationToken: ct);
            using var reader = new StreamReader(stream);
            var text = await reader.ReadToEndAsync(ct);
            return string.Join('\n', text.TrimEnd('\n').Split('\n').TakeLast(tailLines));
        }
        catch (HttpOperationException ex) when (ex.Response.StatusCode is HttpStatusCode.NotFound or HttpStatusCode.BadRequest)
        {
            // Gone, or its container has not started yet ("is waiting to start"): no log lines.
            return "";
        }
        catch (HttpOperationException ex)
        {
            throw Refused("read the log of", "pod", PodOf(handle), ex);
        }
        catch (HttpRequestException ex)
        {
            throw Unreachable(ex);
        }
    }

    /// <summary>One resource per labelled workspace: its pod, else its leftover Service or Secret (not running).</summary>
    public async IAsyncEnumerable<ManagedResource> ListManagedAsync([EnumeratorCancellation] CancellationToken ct)
    {
        var seen = new HashSet<string>(StringComparer.Ordinal);
        var pods = await CallAsync("list", "pods", Ns, () => Client.CoreV1.ListNamespacedPodAsync(Ns, labelSelector: KubernetesObjects.ManagedSelector, cancellationToken: ct));
        foreach (var p in pods.Items)
        {
            if (IdOf(p) is { } id && seen.Add(id))
            {
                yield return new ManagedResource(id, p.Metadata.Name, PodStatusReader.Read(p).Running, HandleFor(id, p.Metadata.Name))
                {
                    Labels = LabelsOf(p.Metadata),
                };
            }
        }

        var services = await CallAsync("list", "services", Ns, () => Client.CoreV1.ListNamespacedServiceAsync(Ns, labelSelector: KubernetesObjects.ManagedSelector, cancellationToken: ct));
        var secrets = await CallAsync("list", "secrets", Ns, () => Client.CoreV1.ListNamespacedSecretAsync(Ns, labelSelector: KubernetesObjects.ManagedSelector, cancellationToken: ct));
        foreach (var meta in services.Items.Select(s => s.Metadata).Concat(secrets.Items.Select(s => s.Metadata)))
        {
            if (meta.Labels?.TryGetValue(KubernetesObjects.WorkspaceLabel, out var id) == true && seen.Add(id))
            {
                yield return new ManagedResource(id, meta.Name, false, HandleFor(id, KubernetesObjects.PodName(id))) { Labels = LabelsOf(meta) };
            }
        }
    }

    /// <summary>The object's labels, which <c>dsvm doctor --repair</c> rebuilds lost records from.</summary>
    private static Dictionary<string, string> LabelsOf(V1ObjectMeta meta) => new(meta.Labels ?? new Dictionary<string, string>(), StringComparer.Ordinal);

    public async Task<bool> HomeExistsAsync(string homeVolume, CancellationToken ct)
    {
        KubernetesObjects.ValidClaimName(homeVolume);
        try
        {
            // A claim being deleted (Terminating: the pvc-protection finalizer holds it until its last pod is gone)
            // is no longer a home: deleting a workspace with its home answers before the cluster has finished.
            var claim = await Client.CoreV1.ReadNamespacedPersistentVolumeClaimAsync(homeVolume, Ns, cancellationToken: ct);
            return claim.Metadata.DeletionTimestamp is null;
        }
        catch (HttpOperationException ex) when (ex.Response.StatusCode == HttpStatusCode.NotFound)
        {
            return false;
        }
        catch (HttpOperationException ex)
        {
            throw Refused("read", "home claim", homeVolume, ex);
        }
        catch (HttpRequestException ex)
        {
            throw Unreachable(ex);
        }
    }

    /// <summary>
    /// The sum of the allocatable CPUs, memory and <c>nvidia.com/gpu</c> of the ready, schedulable nodes. A size must
    /// still fit on one node; one that fits the sum but no node fails at start as "not schedulable: ...".
    /// </summary>
    public async Task<HostCapacity> GetCapacityAsync(CancellationToken ct) => Sum(await ReadyNodesAsync(ct));

    private async Task<IReadOnlyList<V1Node>> ReadyNodesAsync(CancellationToken ct)
    {
        var nodes = await CallAsync("list", "nodes", "", () => Client.CoreV1.ListNodeAsync(cancellationToken: ct));
        return nodes.Items.Where(IsReady).ToList();
    }

    internal static bool IsReady(V1Node node) =>
        node.Spec?.Unschedulable != true && node.Status?.Conditions?.Any(c => c.Type == "Ready" && c.Status == "True") == true;

    internal static HostCapacity Sum(IEnumerable<V1Node> nodes)
    {
        decimal cpus = 0, memory = 0, gpus = 0;
        foreach (var n in nodes)
        {
            var a = n.Status?.Allocatable;
            if (a is null)
            {
                continue;
            }

            cpus += a.TryGetValue("cpu", out var c) ? c.ToDecimal() : 0;
            memory += a.TryGetValue("memory", out var m) ? m.ToDecimal() : 0;
            gpus += a.TryGetValue(KubernetesObjects.GpuResource, out var g) ? g.ToDecimal() : 0;
        }

        return new HostCapacity((int)Math.Floor(cpus), (long)memory, (int)gpus);
    }

    /// <summary>For <c>dsvm doctor</c>: the API server's version, ready nodes and what they can allocate.</summary>
    public async Task<BackendHealth> DescribeAsync(CancellationToken ct)
    {
        try
        {
            var version = await Client.Version.GetCodeAsync(ct);
            var all = (await Client.CoreV1.ListNodeAsync(cancellationToken: ct)).Items;
            var ready = all.Where(IsReady).ToList();
            var capacity = Sum(ready);
            try
            {
                await Client.CoreV1.ReadNamespaceAsync(Ns, cancellationToken: ct);
            }
            catch (HttpOperationException ex) when (ex.Response.StatusCode == HttpStatusCode.NotFound)
            {
                return new BackendHealth(false, $"namespace {Ns} does not exist (apply deploy/kubernetes/00-namespace.yaml or set the namespace)", capacity);
            }
            catch (HttpOperationException ex) when (ex.Response.StatusCode == HttpStatusCode.Forbidden)
            {
                // Reading the namespace is a courtesy check; an account without it can still run workspaces.
            }

            var gpu = capacity.Gpus > 0 ? $", {capacity.Gpus} nvidia.com/gpu" : "";
            var detail = $"Kubernetes {version.GitVersion} at {Client.BaseUri}: {ready.Count}/{all.Count} nodes ready, "
                + $"allocatable {capacity.Cpus} CPUs, {capacity.MemoryBytes / (1024.0 * 1024 * 1024):0.#} GiB{gpu}; namespace {Ns}";
            return new BackendHealth(ready.Count > 0, ready.Count > 0 ? detail : detail + " (no ready node: nothing can start)", capacity);
        }
        catch (HttpOperationException ex)
        {
            return new BackendHealth(false, $"the Kubernetes API at {Client.BaseUri} refused: {Message(ex)}", null);
        }
        catch (HttpRequestException ex)
        {
            return new BackendHealth(false, Unreachable(ex).Message, null);
        }
        catch (DsvmException ex)
        {
            return new BackendHealth(false, ex.Message, null);
        }
    }

    /// <summary>Creates an object; false when it exists already and <paramref name="ignoreConflict"/> says that is fine.</summary>
    private async Task<bool> CreateAsync<T>(string what, string name, Func<Task<T>> create, bool ignoreConflict)
    {
        try
        {
            await create();
            return true;
        }
        catch (HttpOperationException ex) when (ignoreConflict && ex.Response.StatusCode == HttpStatusCode.Conflict)
        {
            return false;
        }
        catch (HttpOperationException ex)
        {
            throw new WorkspaceStartException(WorkspaceFailure.Backend, $"Kubernetes refused to create {what} {name}: {Message(ex)}");
        }
        catch (HttpRequestException ex)
        {
            throw Unreachable(ex);
        }
    }

    private async Task DeleteAsync<T>(string what, string name, Func<Task<T>> delete)
    {
        try
        {
            await delete();
        }
        catch (HttpOperationException ex) when (ex.Response.StatusCode == HttpStatusCode.NotFound)
        {
            // Gone already.
        }
        catch (JsonException)
        {
            // Deleted: API servers before 1.23 answer a Service delete with a v1 Status, not the Service the client
            // expects (seen on the 1.20 lab cluster). A refusal is an HTTP error and never lands here.
        }
        catch (HttpOperationException ex)
        {
            throw Refused("delete", what, name, ex);
        }
        catch (HttpRequestException ex)
        {
            throw Unreachable(ex);
        }
    }

    private async Task<T> CallAsync<T>(string verb, string what, string name, Func<Task<T>> call)
    {
        try
        {
            return await call();
        }
        catch (HttpOperationException ex)
        {
            throw Refused(verb, what, name, ex);
        }
        catch (HttpRequestException ex)
        {
            throw Unreachable(ex);
        }
    }

    private DsvmException Refused(string verb, string what, string name, HttpOperationException ex) =>
        new(ex.Response.StatusCode == HttpStatusCode.Forbidden
            ? $"the hub's Kubernetes account may not {verb} {what} in namespace {Ns} (see deploy/kubernetes/10-rbac.yaml): {Message(ex)}"
            : $"Kubernetes could not {verb} {what} {name}: {Message(ex)}");

    private EnvironmentNotReadyException Unreachable(HttpRequestException ex) =>
        new($"the Kubernetes API server at {Client.BaseUri} is unreachable: {EngineFaults.Reason(ex)}");

    /// <summary>The API server's own message (a v1 Status body), else the HTTP status.</summary>
    internal static string Message(HttpOperationException ex)
    {
        try
        {
            if (ex.Response?.Content is { Length: > 0 } body
                && JsonDocument.Parse(body).RootElement.TryGetProperty("message", out var m) && m.GetString() is { Length: > 0 } s)
            {
                return s;
            }
        }
        catch (JsonException)
        {
        }

        return ex.Response is { } r ? $"HTTP {(int)r.StatusCode} {r.ReasonPhrase}" : ex.Message;
    }
}
