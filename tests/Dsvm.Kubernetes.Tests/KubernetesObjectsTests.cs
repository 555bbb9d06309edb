using System.Text;
using Dsvm.Core;
using Dsvm.Core.Sizes;
using k8s;
using k8s.Models;
using static Dsvm.Kubernetes.Tests.TestRequests;

namespace Dsvm.Kubernetes.Tests;

public sealed class KubernetesObjectsTests
{
    private static readonly KubernetesBackendOptions Options = new() { Namespace = "dsvm-test" };

    [Theory]
    [InlineData(1.0, "1")]
    [InlineData(2.0, "2")]
    [InlineData(0.5, "500m")]
    [InlineData(0.25, "250m")]
    [InlineData(1.5, "1500m")]
    public void CpuQuantity_WholeCoresOrMillicores(double vcpus, string expected) => Assert.Equal(expected, KubernetesObjects.CpuQuantity(vcpus));

    [Theory]
    [InlineData(4L << 30, "4Gi")]
    [InlineData(512L << 20, "512Mi")]
    [InlineData(1536L << 20, "1536Mi")]
    [InlineData(3L << 10, "3Ki")]
    [InlineData(1000L, "1000")]
    public void MemoryQuantity_LargestExactBinaryUnit(long bytes, string expected) => Assert.Equal(expected, KubernetesObjects.MemoryQuantity(bytes));

    [Fact]
    public void Pod_RequestsEqualLimits_FromTheSize()
    {
        var pod = KubernetesObjects.Pod(Request(size: "medium"), Options);
        var resources = pod.Spec.Containers.Single().Resources;
        Assert.Equal("2", resources.Requests["cpu"].ToString());
        Assert.Equal("4Gi", resources.Requests["memory"].ToString());
        Assert.Equal("2", resources.Limits["cpu"].ToString());
        Assert.Equal("4Gi", resources.Limits["memory"].ToString());
        Assert.Equal(2, resources.Limits.Count);
        Assert.Null(pod.Spec.Tolerations);
        Assert.Contains(pod.Spec.Containers[0].Env, e => e is { Name: "CUDA_VISIBLE_DEVICES", Value: "" });
    }

    [Fact]
    public void Pod_FractionalSize_InMillicoresAndMebibytes()
    {
        var size = new MachineSize("teaching", 0.5, 1.5, 0, SizeClass.General);
        var pod = KubernetesObjects.Pod(Request() with { Size = size }, Options);
        var resources = pod.Spec.Containers.Single().Resources;
        Assert.Equal("500m", resources.Limits["cpu"].ToString());
        Assert.Equal("1536Mi", resources.Limits["memory"].ToString());
        // The quantities round-trip to the exact numbers.
        Assert.Equal(0.5m, resources.Limits["cpu"].ToDecimal());
        Assert.Equal(1536m * 1024 * 1024, resources.Limits["memory"].ToDecimal());
    }

    [Fact]
    public void Pod_GpuSize_LimitsTolerationAndGpuNodeSelector()
    {
        var options = Options with
        {
            NodeSelector = new Dictionary<string, string> { ["pool"] = "workspaces" },
            GpuNodeSelector = new Dictionary<string, string> { ["nvidia.com/gpu.present"] = "true" },
        };
        var pod = KubernetesObjects.Pod(Request(size: "gpu-large", gpu: true), options);
        var resources = pod.Spec.Containers.Single().Resources;
        Assert.Equal("2", resources.Limits["nvidia.com/gpu"].ToString());
        Assert.Equal("8", resources.Limits["cpu"].ToString());
        Assert.Equal("64Gi", resources.Limits["memory"].ToString());
        Assert.False(resources.Requests.ContainsKey("nvidia.com/gpu"));
        var toleration = Assert.Single(pod.Spec.Tolerations);
        Assert.Equal(("nvidia.com/gpu", "Exists", "NoSchedule"), (toleration.Key, toleration.OperatorProperty, toleration.Effect));
        Assert.Equal("workspaces", pod.Spec.NodeSelector["pool"]);
        Assert.Equal("true", pod.Spec.NodeSelector["nvidia.com/gpu.present"]);
        Assert.DoesNotContain(pod.Spec.Containers[0].Env, e => e.Name == "CUDA_VISIBLE_DEVICES");
    }

    [Fact]
    public void Pod_GpuSizeOnCpuFallback_HasNoGpuLimitNorGpuSelector()
    {
        var options = Options with { GpuNodeSelector = new Dictionary<string, string> { ["nvidia.com/gpu.present"] = "true" } };
        var pod = KubernetesObjects.Pod(Request(size: "gpu-small", gpu: false), options);
        Assert.False(pod.Spec.Containers[0].Resources.Limits.ContainsKey("nvidia.com/gpu"));
        Assert.Null(pod.Spec.Tolerations);
        Assert.Null(pod.Spec.NodeSelector);
    }

    [Fact]
    public void Pod_IsUnprivileged()
    {
        var pod = KubernetesObjects.Pod(Request(), Options);
        var ps = pod.Spec.SecurityContext;
        Assert.Equal((65530L, 65530L, true, 65530L), (ps.RunAsUser!.Value, ps.RunAsGroup!.Value, ps.RunAsNonRoot!.Value, ps.FsGroup!.Value));
        Assert.Equal("RuntimeDefault", ps.SeccompProfile.Type);
        var cs = pod.Spec.Containers.Single().SecurityContext;
        Assert.Equal(65530L, cs.RunAsUser);
        Assert.Equal(65530L, cs.RunAsGroup);
        Assert.True(cs.RunAsNonRoot);
        Assert.False(cs.AllowPrivilegeEscalation);
        Assert.False(cs.Privileged);
        Assert.Equal(["ALL"], cs.Capabilities.Drop);
        Assert.Null(cs.Capabilities.Add);
        Assert.Equal("RuntimeDefault", cs.SeccompProfile.Type);
        Assert.False(pod.Spec.AutomountServiceAccountToken);
        Assert.False(pod.Spec.EnableServiceLinks);
        Assert.Equal("Never", pod.Spec.RestartPolicy);
    }

    [Fact]
    public void Pod_ImageFromARegistryCatalog_IsPulledByDigestWithoutThePrefix()
    {
        var pinned = "127.0.0.1:5000/dsvm/minimal@sha256:" + new string('a', 64);
        var options = Options with { ImageRegistryPrefix = "registry.example.com/" };
        Assert.Equal(pinned, KubernetesObjects.ImageRef(pinned, options));
        Assert.Equal("registry.example.com/dsvm/minimal:0123abcd", KubernetesObjects.ImageRef("dsvm/minimal:0123abcd", options));
        Assert.Equal("localhost/dsvm/x:1", KubernetesObjects.ImageRef("localhost/dsvm/x:1", options));
    }

    [Fact]
    public void Pod_ContainerContract_LikeTheDockerBackend()
    {
        var pod = KubernetesObjects.Pod(Request(), Options with { ImageRegistryPrefix = "registry.example.com/", ImagePullPolicy = "Always" });
        var c = pod.Spec.Containers.Single();
        Assert.Equal("registry.example.com/dsvm/minimal:0123abcd", c.Image);
        Assert.Equal("Always", c.ImagePullPolicy);
        Assert.Null(c.Command);
        Assert.Null(c.Args);
        Assert.Equal(8888, Assert.Single(c.Ports).ContainerPort);
        var env = c.Env.Where(e => e.Value is not null).ToDictionary(e => e.Name, e => e.Value);
        Assert.Equal("/user/alice/lab/", env["DSVM_BASE_URL"]);
        Assert.Equal("8888", env["DSVM_PORT"]);
        Assert.Equal("lab", env["DSVM_WORKSPACE"]);
        Assert.Equal("medium", env["DSVM_SIZE"]);
        Assert.Equal("/home/dsvm", env["HOME"]);
        var home = Assert.Single(c.VolumeMounts, m => m.MountPath == "/home/dsvm");
        var volume = Assert.Single(pod.Spec.Volumes, v => v.Name == home.Name);
        Assert.Equal("dsvm-home-alice-lab", volume.PersistentVolumeClaim.ClaimName);
        var shm = Assert.Single(pod.Spec.Volumes, v => v.Name == "shm");
        Assert.Equal(("Memory", "1Gi"), (shm.EmptyDir.Medium, shm.EmptyDir.SizeLimit.ToString()));
        Assert.Equal("lab", pod.Spec.Hostname);
        // TCP only: an HTTP probe of /api/status would need the token.
        Assert.Null(c.ReadinessProbe.HttpGet);
        Assert.Equal("8888", c.ReadinessProbe.TcpSocket.Port.Value);
        Assert.Null(c.LivenessProbe);
    }

    [Fact]
    public void Pod_OnTheWire_NumericPortsAreNumbers_NamedPortsAreNames()
    {
        // The API server reads a string port as a port name: 8888 must go out as a number, "jupyter" as a string.
        var pod = System.Text.Json.Nodes.JsonNode.Parse(KubernetesJson.Serialize(KubernetesObjects.Pod(Request(), Options)))!;
        var port = pod["spec"]!["containers"]![0]!["readinessProbe"]!["tcpSocket"]!["port"]!;
        Assert.Equal(System.Text.Json.JsonValueKind.Number, port.GetValueKind());
        Assert.Equal(8888, port.GetValue<int>());
        var service = System.Text.Json.Nodes.JsonNode.Parse(KubernetesJson.Serialize(KubernetesObjects.Service(Request(), Options)))!;
        var target = service["spec"]!["ports"]![0]!["targetPort"]!;
        Assert.Equal(System.Text.Json.JsonValueKind.String, target.GetValueKind());
        Assert.Equal(System.Text.Json.JsonValueKind.Number, service["spec"]!["ports"]![0]!["port"]!.GetValueKind());
        Assert.Equal("2", pod["spec"]!["containers"]![0]!["resources"]!["limits"]!["cpu"]!.GetValue<string>());
        Assert.Equal("4Gi", pod["spec"]!["containers"]![0]!["resources"]!["limits"]!["memory"]!.GetValue<string>());
    }

    [Fact]
    public void Pod_TokenComesFromTheSecret_NeverInClear()
    {
        var request = Request();
        var pod = KubernetesObjects.Pod(request, Options);
        var token = Assert.Single(pod.Spec.Containers[0].Env, e => e.Name == "JUPYTER_TOKEN");
        Assert.Null(token.Value);
        Assert.Equal(("dsvm-ws-abc123-token", "token"), (token.ValueFrom.SecretKeyRef.Name, token.ValueFrom.SecretKeyRef.Key));
        Assert.DoesNotContain(request.Token, KubernetesJson.Serialize(pod), StringComparison.Ordinal);

        var secret = KubernetesObjects.Secret(request, Options);
        Assert.Equal("dsvm-ws-abc123-token", secret.Metadata.Name);
        Assert.Equal("Opaque", secret.Type);
        Assert.Equal(request.Token, Encoding.UTF8.GetString(secret.Data["token"]));
        Assert.Null(secret.StringData);
    }

    [Fact]
    public void AllObjects_CarryTheManagedLabels_AndValidRequestLabels()
    {
        var request = Request() with
        {
            Labels = new Dictionary<string, string>(Request().Labels) { ["io.opendsvm.bad"] = "has spaces", ["bad key!"] = "x" },
        };
        var metas = new[]
        {
            KubernetesObjects.Pod(request, Options).Metadata,
            KubernetesObjects.Service(request, Options).Metadata,
            KubernetesObjects.Secret(request, Options).Metadata,
            KubernetesObjects.HomeClaim(request, Options).Metadata,
        };
        foreach (var m in metas)
        {
            Assert.Equal("dsvm-test", m.NamespaceProperty);
            Assert.Equal("true", m.Labels["io.opendsvm.managed"]);
            Assert.Equal("ws-abc123", m.Labels["io.opendsvm.workspace"]);
            Assert.Equal("alice", m.Labels["io.opendsvm.owner"]);
            Assert.Equal("medium", m.Labels["io.opendsvm.size"]);
            Assert.False(m.Labels.ContainsKey("io.opendsvm.bad"));
            Assert.False(m.Labels.ContainsKey("bad key!"));
            Assert.All(m.Labels, kv => Assert.True(KubernetesObjects.IsValidLabelKey(kv.Key) && KubernetesObjects.IsValidLabelValue(kv.Value), kv.ToString()));
        }

        Assert.Equal("true", metas[3].Labels["io.opendsvm.home"]);
    }

    [Fact]
    public void HomeClaim_CarriesTheHomeIdAndOwnerId_WhenTheRequestHasThem()
    {
        var request = Request() with { HomeId = "h-0123456789ab", OwnerId = "u-0123456789ab", HomeVolume = "dsvm-home-h-0123456789ab" };
        var claim = KubernetesObjects.HomeClaim(request, Options);
        Assert.Equal("dsvm-home-h-0123456789ab", claim.Metadata.Name);
        Assert.Equal("h-0123456789ab", claim.Metadata.Labels["io.opendsvm.home"]);
        Assert.Equal("u-0123456789ab", claim.Metadata.Labels["io.opendsvm.owner-id"]);
    }

    [Fact]
    public void NetworkPolicy_AdmitsOnlyTheHubsPods_OnTheJupyterPort_ToThisWorkspaceOnly()
    {
        var policy = KubernetesObjects.NetworkPolicy(Request(), Options);
        Assert.Equal(("networking.k8s.io/v1", "NetworkPolicy"), (policy.ApiVersion, policy.Kind));
        Assert.Equal("dsvm-ws-abc123", policy.Metadata.Name);
        Assert.Equal("dsvm-test", policy.Metadata.NamespaceProperty);
        Assert.Equal("ws-abc123", policy.Metadata.Labels["io.opendsvm.workspace"]);
        // Selects this workspace's pod only (the Service's selector), never a whole namespace.
        Assert.Equal(KubernetesObjects.Service(Request(), Options).Spec.Selector, policy.Spec.PodSelector.MatchLabels);
        Assert.Null(policy.Spec.PodSelector.MatchExpressions);
        Assert.Equal(["Ingress"], policy.Spec.PolicyTypes);
        var rule = Assert.Single(policy.Spec.Ingress);
        var peer = Assert.Single(rule.FromProperty);
        Assert.Equal(new Dictionary<string, string> { ["app.kubernetes.io/name"] = "dsvm-hub" }, peer.PodSelector.MatchLabels);
        Assert.Null(peer.NamespaceSelector);
        Assert.Null(peer.IpBlock);
        var port = Assert.Single(rule.Ports);
        Assert.Equal(("TCP", "8888"), (port.Protocol, port.Port.Value));
        // On the wire the port is a number, as the API server requires.
        Assert.Contains("\"port\":8888", KubernetesJson.Serialize(policy), StringComparison.Ordinal);
    }

    [Fact]
    public void NetworkPolicy_IsolatedSize_AllowsNoConnectionOut_InternetSize_LeavesEgressAlone()
    {
        var isolated = Request() with { Size = Request().Size with { Network = WorkspaceNetwork.Isolated } };
        var policy = KubernetesObjects.NetworkPolicy(isolated, Options);
        Assert.Equal(["Ingress", "Egress"], policy.Spec.PolicyTypes);
        Assert.Empty(policy.Spec.Egress);
        Assert.Single(policy.Spec.Ingress); // the hub still gets in
        Assert.Contains("\"egress\":[]", KubernetesJson.Serialize(policy), StringComparison.Ordinal);

        var internet = KubernetesObjects.NetworkPolicy(Request(), Options);
        Assert.Equal(["Ingress"], internet.Spec.PolicyTypes);
        Assert.Null(internet.Spec.Egress);
    }

    [Fact]
    public void NetworkPolicy_HubOutsideTheCluster_AddsItsAddressRanges()
    {
        var options = Options with { HubPodLabels = new Dictionary<string, string> { ["app"] = "my-hub" }, HubCidrs = ["192.0.2.0/24"] };
        var from = Assert.Single(KubernetesObjects.NetworkPolicy(Request(), options).Spec.Ingress).FromProperty;
        Assert.Equal(2, from.Count);
        Assert.Equal("my-hub", from[0].PodSelector.MatchLabels["app"]);
        Assert.Equal("192.0.2.0/24", from[1].IpBlock.Cidr);
    }

    [Theory]
    [InlineData(false, "10.0.0.0/8")]
    [InlineData(true, "not-a-range")]
    public void Options_WithoutHubLabelsOrWithABadRange_AreRefused(bool withLabels, string cidr)
    {
        var options = Options with
        {
            HubPodLabels = withLabels ? Options.HubPodLabels : new Dictionary<string, string>(),
            HubCidrs = [cidr],
        };
        var ex = Assert.Throws<UsageException>(() => new KubernetesWorkspaceBackend(options));
        Assert.Contains(withLabels ? "HubCidrs" : "HubPodLabels", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void HomeClaim_SizeClassAndAccessMode_FromOptions()
    {
        var claim = KubernetesObjects.HomeClaim(Request(), Options with { StorageClass = "fast-ssd", HomeSize = "25Gi" });
        Assert.Equal("dsvm-home-alice-lab", claim.Metadata.Name);
        Assert.Equal("fast-ssd", claim.Spec.StorageClassName);
        Assert.Equal(["ReadWriteOnce"], claim.Spec.AccessModes);
        Assert.Equal("25Gi", claim.Spec.Resources.Requests["storage"].ToString());
        Assert.Null(KubernetesObjects.HomeClaim(Request(), Options).Spec.StorageClassName);
    }

    [Fact]
    public void Service_ClusterIpOnJupyterPort_SelectsTheWorkspacePod()
    {
        var request = Request();
        var service = KubernetesObjects.Service(request, Options);
        var pod = KubernetesObjects.Pod(request, Options);
        Assert.Equal("ClusterIP", service.Spec.Type);
        var port = Assert.Single(service.Spec.Ports);
        Assert.Equal((8888, "jupyter", "TCP"), (port.Port, port.TargetPort.Value, port.Protocol));
        Assert.Contains(pod.Spec.Containers[0].Ports, p => p.Name == "jupyter");
        Assert.All(service.Spec.Selector, kv => Assert.Equal(kv.Value, pod.Metadata.Labels[kv.Key]));
        Assert.Equal("ws-abc123", service.Spec.Selector["io.opendsvm.workspace"]);
    }

    [Fact]
    public void Names_AreValidDns1123Labels()
    {
        var request = Request(id: "ws-0123456789ab", name: "a-very-long-workspace-name-of-forty-ch", owner: "an-owner-name-with-forty-characters-xxxx");
        var names = new[]
        {
            KubernetesObjects.PodName(request.Id), KubernetesObjects.ServiceName(request.Id), KubernetesObjects.SecretName(request.Id),
        };
        Assert.All(names, n => Assert.True(n.Length <= 63 && KubernetesObjects.DnsLabel().IsMatch(n), n));
        // Service names are DNS-1035 labels: a letter first.
        Assert.True(char.IsAsciiLetterLower(KubernetesObjects.ServiceName(request.Id)[0]));
        var claim = KubernetesObjects.HomeClaim(request, Options).Metadata.Name;
        Assert.True(claim.Length <= 253 && KubernetesObjects.DnsSubdomain().IsMatch(claim), claim);
        Assert.Equal("dsvm-ws-0123456789ab", KubernetesObjects.PodName(request.Id));
    }

    [Theory]
    [InlineData("WS-ABC")]
    [InlineData("ws_abc")]
    [InlineData("-ws")]
    [InlineData("ws-0123456789012345678901234567890123456789012345678")]
    public void BadIds_AreRefusedClearly(string id)
    {
        var ex = Assert.Throws<UsageException>(() => KubernetesObjects.Pod(Request(id: id), Options));
        Assert.Contains($"workspace id '{id}'", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void BadHomeVolume_IsRefusedClearly()
    {
        var ex = Assert.Throws<UsageException>(() => KubernetesObjects.HomeClaim(Request() with { HomeVolume = "Home_Of_Alice" }, Options));
        Assert.Contains("'Home_Of_Alice' is not a valid Kubernetes claim name", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Pod_Env_CarriesTheSizesCpusRoundedDown()
    {
        var env = KubernetesObjects.Pod(Request() with { Size = new MachineSize("odd", 3.5, 4, 0, SizeClass.General) }, Options).Spec.Containers.Single().Env;
        Assert.Contains(env, e => e.Name == "DSVM_CPUS" && e.Value == "3");
        var half = KubernetesObjects.Pod(Request() with { Size = new MachineSize("half", 0.5, 1, 0, SizeClass.General) }, Options).Spec.Containers.Single().Env;
        Assert.Contains(half, e => e.Name == "DSVM_CPUS" && e.Value == "1");
    }
}
