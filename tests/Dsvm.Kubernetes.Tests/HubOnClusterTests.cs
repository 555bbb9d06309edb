using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Net.WebSockets;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using CliWrap;
using CliWrap.Buffered;
using Dsvm.Core.Workspaces;
using Dsvm.Images.Registry;
using Dsvm.Testing;
using k8s;
using k8s.Autorest;
using k8s.Models;
using Xunit.Abstractions;
using Xunit.Sdk;

namespace Dsvm.Kubernetes.Tests;

/// <summary>
/// Issue 10, part 3: the whole hub path on a real cluster (under test.sh, the lab of scripts/kubernetes-lab.sh, with
/// kube-proxy and the API server reachable from pods). The hub image is built from deploy/hub for real (the
/// self-contained <c>dsvm</c> on the local <c>dsvm-base/*</c> image), pushed with the <c>minimal</c> environment
/// (as <c>dsvm env push</c> pushes it) to a real registry on 127.0.0.1, and deploy/kubernetes is applied with only
/// what a user changes patched. Then, through the hub's Service: log in, start two workspaces of two users as pods
/// with requests and limits from their sizes, run code in a kernel over a WebSocket through the hub's proxy,
/// stop and resize keeping the home's claim, delete the hub's pod and find every workspace running and routable
/// from the replacement, delete one workspace keeping its home and one with it.
/// </summary>
[Trait("Requires", "Kubernetes")]
public sealed class HubOnClusterTests(ITestOutputHelper output)
{
    /// <summary>The manifests' namespace, used as they have it (the lab is the tests' own cluster).</summary>
    private const string Ns = "dsvm";
    private const string HubLabel = "app.kubernetes.io/name=dsvm-hub";
    private const string AdminPassword = "e2e-admin-pass-4f1c";

    /// <summary>Sizes for a 2-CPU lab node: the hub (250m) and two workspaces fit, and one of them resized.</summary>
    private const string Sizes = """
            e2e-small: {vcpus: 0.5, memory: 1, description: "half a vCPU, 1 GiB (end-to-end test)"}
            e2e-medium: {vcpus: 0.75, memory: 1.5, description: "three quarters of a vCPU, 1.5 GiB (end-to-end test)"}
        """;

    [KubernetesFact]
    public async Task The_hub_image_deployed_from_the_manifests_serves_workspaces_and_a_new_hub_pod_finds_them_running()
    {
        Assert.Null(KubernetesCluster.UnavailableReason);
        var clock = Stopwatch.StartNew();
        using var cts = new CancellationTokenSource(TimeSpan.FromMinutes(15));
        var ct = cts.Token;
        using var client = KubernetesCluster.Client();
        var run = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(4));
        await using var registry = await RegistryProcess.StartAsync();
        // Pods reach the registry at the bridge gateway (only the host and its containers reach that address); the
        // kubelet pulls through the local engine, which trusts a registry on loopback without TLS.
        var gateway = await DefaultBridge.GatewayAsync(ct);
        await using var forward = TcpForwarder.Start(gateway, registry.Port);
        var hubImage = $"{registry.Host}/opendsvm/hub:e2e-{run}";
        IDisposable? cluster = null;
        try
        {
            // 1. The images. The environment's push (a label step on the tested image, then docker push) runs while
            // the hub is published and built; neither stays tagged here, so the kubelet pulls both from the registry.
            await BuiltEnvironment.GetAsync("minimal");
            var pusher = new RegistryPusher(BuiltEnvironment.Services.Docker, BuiltEnvironment.Services.Records);
            var push = pusher.PushAsync("minimal", RegistryAddress.Parse(registry.Host), null, m => Log($"push: {m}"), ct);
            await HubImage.PublishAsync(Log, ct);
            var built = Stopwatch.StartNew();
            var baseImage = await HubImage.BuildAsync(hubImage, ct);
            await HubImage.DockerAsync(["push", hubImage], ct);
            Log($"hub image {hubImage} on {baseImage} built and pushed in {built.Elapsed.TotalSeconds:0}s");
            var pushed = await push;
            Log($"environment pushed: {pushed.PinnedReference} ({clock.Elapsed.TotalSeconds:0}s so far)");
            await HubImage.RemoveRegistryImagesAsync(registry.Host, ct);

            // The cluster from here on (the images above were made while another class's test used it).
            var waited = Stopwatch.StartNew();
            cluster = await KubernetesCluster.UseAsync();
            Log($"the cluster is this test's after {waited.Elapsed.TotalSeconds:0}s of waiting");
            await DeleteNamespaceAsync(client, wait: true, ct); // a crashed run's leftovers

            // 2. The manifests, in file order, as docs/kubernetes.md applies them.
            await ApplyManifestsAsync(client, hubImage, $"http://{forward.Endpoint}", registry.Host, ct);
            var hubPod = await WaitForHubAsync(client, previous: null, ct);
            Assert.Equal(hubImage, hubPod.Spec.Containers[0].Image);
            var service = await client.CoreV1.ReadNamespacedServiceAsync("dsvm-hub", Ns, cancellationToken: ct);
            var hubUrl = new Uri($"http://{service.Spec.ClusterIP}:{service.Spec.Ports[0].Port}/");
            await WaitForServiceAsync(hubUrl, ct);
            Log($"hub {hubPod.Metadata.Name} ready, service at {hubUrl} ({clock.Elapsed.TotalSeconds:0}s so far)");
            var dataClaim = await client.CoreV1.ReadNamespacedPersistentVolumeClaimAsync("dsvm-hub-data", Ns, cancellationToken: ct);
            Assert.Equal("Bound", dataClaim.Status.Phase);

            // 3. Through the Service: the admin from the Secret, a second user, the environment from the registry.
            using var admin = await HubSession.LogInAsync(hubUrl, "admin", AdminPassword, ct);
            (await admin.SendAsync(HttpMethod.Post, "api/v1/users", new { name = "alice", password = "alice-pass-77d0", admin = false }, ct)).Expect(HttpStatusCode.Created);
            using var alice = await HubSession.LogInAsync(hubUrl, "alice", "alice-pass-77d0", ct);
            var environments = (await alice.SendAsync(HttpMethod.Get, "api/v1/environments", null, ct)).Expect(HttpStatusCode.OK);
            var minimal = Assert.Single(environments.Json.EnumerateArray(), e => e.GetProperty("name").GetString() == "minimal");
            Assert.Contains($"({pushed.ChecksPassed}/{pushed.ChecksTotal} checks passed)", minimal.GetProperty("description").GetString(), StringComparison.Ordinal);

            // 4. Two workspaces of two users: pods with requests = limits from the size, the image by digest from
            // the registry's pull address, each with its own home claim.
            var starts = new[] { StartAsync(alice, "w1", "e2e-small", ct), StartAsync(admin, "w2", "e2e-small", ct) };
            var (w1, w2) = (await starts[0], await starts[1]);
            var pod1 = await WorkspacePodAsync(client, "alice", "w1", ct);
            var pod2 = await WorkspacePodAsync(client, "admin", "w2", ct);
            foreach (var pod in new[] { pod1, pod2 })
            {
                AssertResources(pod, "500m", "1Gi");
                Assert.Equal($"{registry.Host}/dsvm/minimal@{pushed.Digest}", pod.Spec.Containers[0].Image);
            }

            Assert.NotEqual(ClaimOf(pod1), ClaimOf(pod2));
            Log($"w1 ({w1}) and w2 ({w2}) running ({clock.Elapsed.TotalSeconds:0}s so far)");

            // 5. Code in a kernel over a WebSocket through the hub's proxy, as JupyterLab runs it.
            Assert.Equal("42 65530", (await alice.RunInKernelAsync("alice", "w1",
                "import os\nopen(os.path.expanduser('~/e2e-marker'), 'w').write('kept by w1')\nprint(6 * 7, os.getuid())", ct)).Trim());
            Assert.Equal("e2e-small", (await admin.RunInKernelAsync("admin", "w2", "import os; print(os.environ['DSVM_SIZE'])", ct)).Trim());
            // One user never reaches another's workspace through the proxy.
            Assert.Equal(HttpStatusCode.Forbidden, (await alice.SendAsync(HttpMethod.Get, "user/admin/w2/api/status", null, ct)).Status);

            // 6. Stop keeps the claim; after a resize the start is a new pod of the new size on the same claim, which still has the file.
            var claim = await client.CoreV1.ReadNamespacedPersistentVolumeClaimAsync(ClaimOf(pod1), Ns, cancellationToken: ct);
            var stopped = (await alice.SendAsync(HttpMethod.Post, "api/v1/workspaces/alice/w1/stop", null, ct)).Expect(HttpStatusCode.OK);
            Assert.Equal("stopped", stopped.Json.GetProperty("state").GetString());
            Assert.Empty(await PodsAsync(client, $"{WorkspaceLabels.Workspace}={pod1.Metadata.Labels[WorkspaceLabels.Workspace]}", ct));
            Assert.Equal(claim.Metadata.Uid, (await client.CoreV1.ReadNamespacedPersistentVolumeClaimAsync(claim.Metadata.Name, Ns, cancellationToken: ct)).Metadata.Uid);
            // A stopped workspace's resize only changes its size (200, as `dsvm resize` waits for it); the start makes the pod.
            var sized = (await alice.SendAsync(HttpMethod.Post, "api/v1/workspaces/alice/w1/resize?wait=true", new { size = "e2e-medium" }, ct)).Expect(HttpStatusCode.OK);
            Assert.Equal(("stopped", "e2e-medium"), (sized.Json.GetProperty("state").GetString(), sized.Json.GetProperty("size").GetString()));
            Assert.Empty(await PodsAsync(client, $"{WorkspaceLabels.Workspace}={pod1.Metadata.Labels[WorkspaceLabels.Workspace]}", ct));
            (await alice.SendAsync(HttpMethod.Post, "api/v1/workspaces/alice/w1/start?wait=true", null, ct)).Expect(HttpStatusCode.OK);
            var resized = await WorkspacePodAsync(client, "alice", "w1", ct);
            AssertResources(resized, "750m", "1536Mi");
            Assert.Equal(claim.Metadata.Name, ClaimOf(resized));
            Assert.Equal(claim.Metadata.Uid, (await client.CoreV1.ReadNamespacedPersistentVolumeClaimAsync(claim.Metadata.Name, Ns, cancellationToken: ct)).Metadata.Uid);
            Assert.Equal("kept by w1", (await alice.RunInKernelAsync("alice", "w1", "import os; print(open(os.path.expanduser('~/e2e-marker')).read())", ct)).Trim());

            // 7. The hub's pod goes; the replacement (same claim, same records) finds both workspaces running, their
            // pods untouched, and routes to them. The old session still works: sessions and keys are on the claim.
            var before = (await PodsAsync(client, $"{WorkspaceLabels.Managed}=true", ct)).ToDictionary(p => p.Metadata.Name, p => p.Metadata.Uid);
            var restart = Stopwatch.StartNew();
            await client.CoreV1.DeleteNamespacedPodAsync(hubPod.Metadata.Name, Ns, cancellationToken: ct);
            var newHub = await WaitForHubAsync(client, previous: hubPod.Metadata.Name, ct);
            await WaitForServiceAsync(hubUrl, ct);
            Log($"hub pod {hubPod.Metadata.Name} deleted; {newHub.Metadata.Name} ready in {restart.Elapsed.TotalSeconds:0}s");
            var list = (await admin.SendAsync(HttpMethod.Get, "api/v1/workspaces?all=true", null, ct)).Expect(HttpStatusCode.OK);
            Assert.Equal(["admin/w2 running", "alice/w1 running"],
                list.Json.EnumerateArray().Select(w => $"{w.GetProperty("owner").GetString()}/{w.GetProperty("name").GetString()} {w.GetProperty("state").GetString()}").Order(StringComparer.Ordinal));
            Assert.Equal(before, (await PodsAsync(client, $"{WorkspaceLabels.Managed}=true", ct)).ToDictionary(p => p.Metadata.Name, p => p.Metadata.Uid));
            Assert.Equal("kept by w1", (await alice.RunInKernelAsync("alice", "w1", "import os; print(open(os.path.expanduser('~/e2e-marker')).read())", ct)).Trim());
            Assert.Equal("2", (await admin.RunInKernelAsync("admin", "w2", "print(1 + 1)", ct)).Trim());
            Log($"both workspaces routable {restart.Elapsed.TotalSeconds:0}s after the hub pod was deleted");

            // 8. Delete keeping the home: the workspace's objects go, its claim stays. Delete with the home: the claim goes too.
            var claim2 = ClaimOf(pod2);
            (await admin.SendAsync(HttpMethod.Delete, "api/v1/workspaces/admin/w2", null, ct)).Expect(HttpStatusCode.NoContent);
            await AssertWorkspaceObjectsGoneAsync(client, pod2.Metadata.Labels[WorkspaceLabels.Workspace], ct);
            Assert.NotNull(await client.CoreV1.ReadNamespacedPersistentVolumeClaimAsync(claim2, Ns, cancellationToken: ct));
            (await alice.SendAsync(HttpMethod.Delete, "api/v1/workspaces/alice/w1?deleteHome=true", null, ct)).Expect(HttpStatusCode.NoContent);
            await AssertWorkspaceObjectsGoneAsync(client, resized.Metadata.Labels[WorkspaceLabels.Workspace], ct);
            await Wait.UntilAsync(async () => !await ClaimExistsAsync(client, claim.Metadata.Name, ct), TimeSpan.FromSeconds(30), () => $"claim {claim.Metadata.Name} still there after delete with deleteHome=true", ct);
            Assert.Empty((await alice.SendAsync(HttpMethod.Get, "api/v1/workspaces", null, ct)).Expect(HttpStatusCode.OK).Json.EnumerateArray());
            Log($"end-to-end test passed in {clock.Elapsed.TotalSeconds:0}s");
        }
        catch (Exception ex)
        {
            throw new XunitException($"{ex.GetType().Name}: {ex.Message}\n{await DiagnosticsAsync(client)}", ex);
        }
        finally
        {
            // The namespace (the pods, claims, secrets, the hub) and the cluster-wide RBAC objects; then the containers
            // the kubelet has not collected yet, which would keep the pulled images; then every name under the registry.
            if (cluster is not null)
            {
                using var cleanup = new CancellationTokenSource(TimeSpan.FromMinutes(3));
                try
                {
                    // The pods first, with no grace: the hub would take its shutdown time, and the namespace waits for it.
                    await client.CoreV1.DeleteCollectionNamespacedPodAsync(Ns, gracePeriodSeconds: 0, cancellationToken: cleanup.Token);
                    await DeleteNamespaceAsync(client, wait: true, cleanup.Token);
                    await DeleteClusterObjectsAsync(client);
                }
                catch (Exception ex) when (ex is XunitException or OperationCanceledException or HttpOperationException or HttpRequestException)
                {
                    Log($"clean-up: {ex.Message}");
                }

                cluster.Dispose();
            }
            var left = await Cli.Wrap("docker").WithArguments(["ps", "-aq", "--filter", $"label=io.kubernetes.pod.namespace={Ns}"])
                .WithValidation(CommandResultValidation.None).ExecuteBufferedAsync(CancellationToken.None);
            var containers = left.StandardOutput.Split('\n', StringSplitOptions.RemoveEmptyEntries);
            if (containers.Length > 0)
            {
                await Cli.Wrap("docker").WithArguments(["rm", "-f", .. containers]).WithValidation(CommandResultValidation.None).ExecuteBufferedAsync(CancellationToken.None);
            }

            await HubImage.RemoveRegistryImagesAsync(registry.Host, CancellationToken.None);
        }
    }

    private void Log(string message) => output.WriteLine($"[{DateTime.UtcNow:HH:mm:ss}] {message}");

    // ---- the manifests ----

    /// <summary>
    /// deploy/kubernetes in file order (no Ingress: the lab has no ingress controller), with what a user of this
    /// cluster changes: the hub image, the registry (listed by the hub at the gateway forwarder, pulled by the
    /// engine on loopback), the sizes; and the
    /// admin password Secret, created as the docs say.
    /// </summary>
    private async Task ApplyManifestsAsync(IKubernetes client, string hubImage, string registryUrl, string pullAddress, CancellationToken ct)
    {
        var dir = Path.Combine(TestEnvironment.RepoRoot, "deploy", "kubernetes");
        string Read(string file) => File.ReadAllText(Path.Combine(dir, file));
        static string Patch(string text, string file, string from, string to)
        {
            Assert.True(text.Contains(from, StringComparison.Ordinal), $"{file} no longer has '{from}': update the end-to-end test's patch");
            return text.Replace(from, to, StringComparison.Ordinal);
        }

        await KubectlAsync(["apply", "-f", "-"], Read("00-namespace.yaml"), ct);
        await client.CoreV1.CreateNamespacedSecretAsync(new V1Secret
        {
            Metadata = new V1ObjectMeta { Name = "dsvm-hub-admin" },
            StringData = new Dictionary<string, string> { ["password"] = AdminPassword },
        }, Ns, cancellationToken: ct);

        var config = Read("25-hub-config.yaml");
        // endpoint-mode stays `service`: the hub reaches each workspace at SERVICE.NAMESPACE.svc.cluster.local through the
        // lab's cluster DNS and the Service's cluster IP, as on a cluster with CoreDNS.
        Assert.Contains("endpoint-mode: service", config, StringComparison.Ordinal);
        config = Patch(config, "25-hub-config.yaml", "  # sizes.yaml: |\n  #   tiny: {vcpus: 0.5, memory: 1, description: \"half a vCPU, 1 GiB\"}",
            "  sizes.yaml: |\n" + Sizes.TrimEnd());
        var hub = Read("30-hub.yaml");
        hub = Patch(hub, "30-hub.yaml", "image: registry.example.com/opendsvm/hub:latest", $"image: {hubImage}");
        hub = Patch(hub, "30-hub.yaml", "value: https://registry.example.com", $"value: {registryUrl}");
        hub = Patch(hub, "30-hub.yaml", "            # - name: DSVM__Hub__Registry__PullAddress\n            #   value: localhost:5001",
            $"            - name: DSVM__Hub__Registry__PullAddress\n              value: {pullAddress}");
        var all = new[] { Read("10-rbac.yaml"), Read("20-hub-data.yaml"), config, hub, Read("40-service.yaml"), Read("60-networkpolicy.yaml") };
        Log(await KubectlAsync(["apply", "-f", "-"], string.Join("\n---\n", all), ct));
    }

    private static async Task<string> KubectlAsync(string[] args, string? stdin, CancellationToken ct)
    {
        var kubectl = Environment.GetEnvironmentVariable("DSVM_K8S_LAB_BIN") is { Length: > 0 } bin ? Path.Combine(bin, "kubectl") : "kubectl";
        var command = Cli.Wrap(kubectl).WithArguments(["--kubeconfig", KubernetesCluster.Kubeconfig!, .. args]).WithValidation(CommandResultValidation.None);
        if (stdin is not null)
        {
            command = command.WithStandardInputPipe(PipeSource.FromString(stdin));
        }

        var r = await command.ExecuteBufferedAsync(ct);
        Assert.True(r.ExitCode == 0, $"kubectl {string.Join(' ', args)} failed (exit {r.ExitCode}):\n{r.StandardOutput}\n{r.StandardError}");
        return r.StandardOutput;
    }

    /// <summary>The hub's pod (not <paramref name="previous"/>) once it is ready: its readiness probe is GET /healthz.</summary>
    private static async Task<V1Pod> WaitForHubAsync(IKubernetes client, string? previous, CancellationToken ct)
    {
        V1Pod? ready = null;
        await Wait.UntilAsync(async () =>
        {
            ready = (await PodsAsync(client, HubLabel, ct)).FirstOrDefault(p => p.Metadata.Name != previous && p.Metadata.DeletionTimestamp is null
                && p.Status.Conditions?.Any(c => c.Type == "Ready" && c.Status == "True") == true);
            return ready is not null;
        }, TimeSpan.FromMinutes(3), () => "the hub's pod did not become ready", ct);
        return ready!;
    }

    /// <summary>
    /// Until the hub answers <c>/healthz</c> through its Service: a pod that is ready is in the Service's endpoints only
    /// once kube-proxy has written its rules (a Service without endpoints refuses connections).
    /// </summary>
    private static async Task WaitForServiceAsync(Uri hub, CancellationToken ct)
    {
        using var http = new HttpClient(new SocketsHttpHandler { UseProxy = false }) { Timeout = TimeSpan.FromSeconds(5) };
        var last = "";
        await Wait.UntilAsync(async () =>
        {
            (var ok, last) = await Healthz.AskAsync(http, hub, ct);
            return ok;
        }, TimeSpan.FromMinutes(1), () => $"the hub's Service {hub} did not answer /healthz (last: {last})", ct);
    }

    // ---- workspaces ----

    private static async Task<string> StartAsync(HubSession session, string name, string size, CancellationToken ct)
    {
        var r = (await session.SendAsync(HttpMethod.Post, "api/v1/workspaces?wait=true", new { name, environment = "minimal", size }, ct)).Expect(HttpStatusCode.OK);
        Assert.Equal("running", r.Json.GetProperty("state").GetString());
        Assert.Equal("kubernetes", r.Json.GetProperty("backend").GetString());
        return r.Json.GetProperty("url").GetString()!;
    }

    private static async Task<V1Pod> WorkspacePodAsync(IKubernetes client, string owner, string name, CancellationToken ct) =>
        Assert.Single(await PodsAsync(client, $"{WorkspaceLabels.Managed}=true,{WorkspaceLabels.Owner}={owner},{WorkspaceLabels.Name}={name}", ct));

    private static async Task<IList<V1Pod>> PodsAsync(IKubernetes client, string selector, CancellationToken ct) =>
        (await client.CoreV1.ListNamespacedPodAsync(Ns, labelSelector: selector, cancellationToken: ct)).Items;

    private static void AssertResources(V1Pod pod, string cpu, string memory)
    {
        var resources = pod.Spec.Containers[0].Resources;
        Assert.Equal((cpu, memory), (resources.Limits["cpu"].ToString(), resources.Limits["memory"].ToString()));
        Assert.Equal((cpu, memory), (resources.Requests["cpu"].ToString(), resources.Requests["memory"].ToString()));
        Assert.Equal("Guaranteed", pod.Status.QosClass);
    }

    private static string ClaimOf(V1Pod pod) => pod.Spec.Volumes.Single(v => v.PersistentVolumeClaim is not null).PersistentVolumeClaim.ClaimName;

    private static async Task<bool> ClaimExistsAsync(IKubernetes client, string name, CancellationToken ct)
    {
        try
        {
            await client.CoreV1.ReadNamespacedPersistentVolumeClaimAsync(name, Ns, cancellationToken: ct);
            return true;
        }
        catch (HttpOperationException ex) when (ex.Response.StatusCode == HttpStatusCode.NotFound)
        {
            return false;
        }
    }

    private static async Task AssertWorkspaceObjectsGoneAsync(IKubernetes client, string id, CancellationToken ct)
    {
        var selector = $"{WorkspaceLabels.Workspace}={id}";
        Assert.Empty((await client.CoreV1.ListNamespacedPodAsync(Ns, labelSelector: selector, cancellationToken: ct)).Items);
        Assert.Empty((await client.CoreV1.ListNamespacedServiceAsync(Ns, labelSelector: selector, cancellationToken: ct)).Items);
        Assert.Empty((await client.CoreV1.ListNamespacedSecretAsync(Ns, labelSelector: selector, cancellationToken: ct)).Items);
        Assert.Empty((await client.NetworkingV1.ListNamespacedNetworkPolicyAsync(Ns, labelSelector: selector, cancellationToken: ct)).Items);
    }

    // ---- clean-up and diagnostics ----

    private static async Task DeleteNamespaceAsync(IKubernetes client, bool wait, CancellationToken ct)
    {
        try
        {
            await client.CoreV1.DeleteNamespaceAsync(Ns, gracePeriodSeconds: 0, cancellationToken: ct);
        }
        catch (HttpOperationException ex) when (ex.Response.StatusCode == HttpStatusCode.NotFound)
        {
            return;
        }

        if (wait)
        {
            await Wait.UntilAsync(async () =>
            {
                try
                {
                    await client.CoreV1.ReadNamespaceAsync(Ns, cancellationToken: ct);
                    return false;
                }
                catch (HttpOperationException ex) when (ex.Response.StatusCode == HttpStatusCode.NotFound)
                {
                    return true;
                }
            }, TimeSpan.FromMinutes(2), () => $"namespace {Ns} is still terminating", ct);
        }
    }

    private static async Task DeleteClusterObjectsAsync(IKubernetes client)
    {
        try
        {
            await client.RbacAuthorizationV1.DeleteClusterRoleBindingAsync("dsvm-hub-capacity");
        }
        catch (HttpOperationException)
        {
        }

        try
        {
            await client.RbacAuthorizationV1.DeleteClusterRoleAsync("dsvm-hub-capacity");
        }
        catch (HttpOperationException)
        {
        }
    }

    /// <summary>What a failure needs to be understood: the pods, the namespace's events, the hub's log (current and previous pod).</summary>
    private static async Task<string> DiagnosticsAsync(IKubernetes client)
    {
        var text = new StringBuilder();
        try
        {
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            var ct = cts.Token;
            text.AppendLine("--- pods in namespace dsvm ---");
            var pods = (await client.CoreV1.ListNamespacedPodAsync(Ns, cancellationToken: ct)).Items;
            foreach (var p in pods)
            {
                text.AppendLine($"{p.Metadata.Name} {p.Status.Phase} {string.Join(", ", p.Status.ContainerStatuses?.Select(c => $"{c.Name} ready={c.Ready} restarts={c.RestartCount} {c.State?.Waiting?.Reason}{c.State?.Terminated?.Reason}") ?? [])}");
            }

            text.AppendLine("--- events ---");
            foreach (var e in (await client.CoreV1.ListNamespacedEventAsync(Ns, cancellationToken: ct)).Items.OrderBy(e => e.LastTimestamp ?? e.EventTime))
            {
                text.AppendLine($"{e.LastTimestamp:HH:mm:ss} {e.Type} {e.Reason} {e.InvolvedObject.Kind}/{e.InvolvedObject.Name}: {e.Message}");
            }

            foreach (var hub in pods.Where(p => p.Metadata.Labels is { } labels && labels.TryGetValue("app.kubernetes.io/name", out var app) && app == "dsvm-hub"))
            {
                text.AppendLine($"--- log of hub pod {hub.Metadata.Name} ---");
                using var log = await client.CoreV1.ReadNamespacedPodLogAsync(hub.Metadata.Name, Ns, tailLines: 200, cancellationToken: ct);
                using var reader = new StreamReader(log);
                text.AppendLine(await reader.ReadToEndAsync(ct));
            }
        }
        catch (Exception ex) when (ex is HttpOperationException or HttpRequestException or OperationCanceledException or IOException)
        {
            text.AppendLine($"(diagnostics incomplete: {ex.Message})");
        }

        return text.ToString();
    }
}
