using System.Text.Json.Nodes;
using k8s;
using k8s.Models;
using YamlDotNet.RepresentationModel;

namespace Dsvm.Kubernetes.Tests;

/// <summary>
/// The example manifests in deploy/kubernetes parse into the typed Kubernetes objects (unknown fields fail), and
/// keep the invariants docs/kubernetes.md states: one hub replica, exactly the verbs the backend needs, the
/// namespace the backend defaults to.
/// </summary>
public sealed class DeployManifestTests
{
    private static readonly string Dir = Path.Combine(FindRoot(), "deploy", "kubernetes");

    private static string FindRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "OpenDSVM.slnx")))
        {
            dir = dir.Parent;
        }

        return dir?.FullName ?? throw new InvalidOperationException("repository root (OpenDSVM.slnx) not found");
    }

    private static List<IKubernetesObject> All() =>
        Directory.GetFiles(Dir, "*.yaml").Order(StringComparer.Ordinal)
            .SelectMany(f => KubernetesYaml.LoadAllFromString(File.ReadAllText(f)).Cast<IKubernetesObject>()).ToList();

    [Fact]
    public void EveryManifest_ParsesStrictly_IntoKnownKinds()
    {
        var objects = All();
        Assert.Equal(
            ["ClusterRole", "ClusterRoleBinding", "ConfigMap", "Deployment", "Ingress", "Namespace", "NetworkPolicy", "PersistentVolumeClaim", "Role", "RoleBinding", "Service", "ServiceAccount"],
            objects.Select(o => o.Kind).Order(StringComparer.Ordinal));
        foreach (var o in objects.OfType<IMetadata<V1ObjectMeta>>().Where(o => o is not V1Namespace and not V1ClusterRole and not V1ClusterRoleBinding))
        {
            Assert.Equal(new KubernetesBackendOptions().Namespace, o.Metadata.NamespaceProperty);
        }

        foreach (var file in Directory.GetFiles(Dir, "*.yaml"))
        {
            Assert.Empty(UnknownFields(File.ReadAllText(file)).Select(p => $"{Path.GetFileName(file)}: {p}"));
        }

        // The check itself: a misspelt field is found, not silently dropped.
        Assert.Equal(["Service.spec.typo"], UnknownFields("apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {typo: 1, type: ClusterIP}\n"));
    }

    /// <summary>Keys of the YAML that the typed object does not keep (the client's YAML loader ignores them).</summary>
    private static List<string> UnknownFields(string yaml)
    {
        var stream = new YamlStream();
        stream.Load(new StringReader(yaml));
        var typed = KubernetesYaml.LoadAllFromString(yaml);
        var missing = new List<string>();
        for (var i = 0; i < stream.Documents.Count; i++)
        {
            var kept = JsonNode.Parse(KubernetesJson.Serialize(typed[i]));
            Compare(stream.Documents[i].RootNode, kept, ((IKubernetesObject)typed[i]).Kind, missing);
        }

        return missing;
    }

    private static void Compare(YamlNode yaml, JsonNode? json, string path, List<string> missing)
    {
        switch (yaml)
        {
            case YamlMappingNode map:
                foreach (var (k, v) in map.Children)
                {
                    var key = ((YamlScalarNode)k).Value!;
                    if (json is not JsonObject o || !o.TryGetPropertyValue(key, out var child))
                    {
                        missing.Add($"{path}.{key}");
                        continue;
                    }

                    Compare(v, child, $"{path}.{key}", missing);
                }

                break;
            case YamlSequenceNode seq:
                for (var i = 0; i < seq.Children.Count; i++)
                {
                    Compare(seq.Children[i], json is JsonArray a && i < a.Count ? a[i] : null, $"{path}[{i}]", missing);
                }

                break;
        }
    }

    [Fact]
    public void Role_GrantsExactlyWhatTheBackendCalls()
    {
        var role = All().OfType<V1Role>().Single();
        var verbs = role.Rules.ToDictionary(r => string.Join(',', r.Resources), r => string.Join(',', r.Verbs.Order(StringComparer.Ordinal)));
        Assert.Equal(new Dictionary<string, string>
        {
            ["pods"] = "create,delete,get,list",
            ["pods/log"] = "get",
            ["services"] = "create,delete,get,list",
            ["secrets"] = "create,delete,get,list,update",
            ["persistentvolumeclaims"] = "create,delete,get,list",
            ["networkpolicies"] = "create,delete",
        }, verbs);
        Assert.All(role.Rules, r => Assert.Equal(r.Resources.SequenceEqual(["networkpolicies"]) ? ["networking.k8s.io"] : [""], r.ApiGroups));
        var cluster = All().OfType<V1ClusterRole>().Single();
        Assert.All(cluster.Rules, r => Assert.DoesNotContain(r.Verbs, v => v is not ("get" or "list")));
        var binding = All().OfType<V1RoleBinding>().Single();
        var account = All().OfType<V1ServiceAccount>().Single();
        Assert.Equal(account.Metadata.Name, Assert.Single(binding.Subjects).Name);
        Assert.Equal(role.Metadata.Name, binding.RoleRef.Name);
    }

    [Fact]
    public void Hub_IsOneReplica_WithItsAccountAndDataClaim()
    {
        var objects = All();
        var hub = objects.OfType<V1Deployment>().Single();
        Assert.Equal(1, hub.Spec.Replicas);
        Assert.Equal("Recreate", hub.Spec.Strategy.Type);
        var pod = hub.Spec.Template.Spec;
        Assert.Equal(objects.OfType<V1ServiceAccount>().Single().Metadata.Name, pod.ServiceAccountName);
        Assert.Equal(objects.OfType<V1PersistentVolumeClaim>().Single().Metadata.Name, pod.Volumes.Single(v => v.Name == "data").PersistentVolumeClaim.ClaimName);
        var container = Assert.Single(pod.Containers);
        Assert.Equal(["hub", "serve", "--listen", "http://0.0.0.0:8000"], container.Args);
        Assert.Contains(container.Env, e => e.Name == "DSVM_HOME" && e.Value == "/data");
        Assert.All(container.Env.Where(e => e.Name.StartsWith("DSVM__", StringComparison.Ordinal)), e => Assert.Matches("^DSVM__[A-Za-z]+__[A-Za-z_]+$", e.Name));
        // A hub with only a kubernetes backend lists its environments from a registry: without one it offers none
        // (what the end-to-end test on the lab found). Its sizes file comes from the ConfigMap's mount.
        Assert.Contains(container.Env, e => e.Name == "DSVM__Hub__Registry__Url" && !string.IsNullOrEmpty(e.Value));
        Assert.Contains(container.Env, e => e.Name == "DSVM_SIZES" && e.Value.StartsWith(container.VolumeMounts.Single(m => m.Name == "config").MountPath + "/", StringComparison.Ordinal));
        Assert.False(container.SecurityContext.AllowPrivilegeEscalation);
        Assert.True(pod.SecurityContext.RunAsNonRoot);
        var service = objects.OfType<V1Service>().Single();
        Assert.All(service.Spec.Selector, kv => Assert.Equal(kv.Value, hub.Spec.Template.Metadata.Labels[kv.Key]));
        var ingress = objects.OfType<V1Ingress>().Single();
        Assert.NotEmpty(ingress.Spec.Tls);
        Assert.Equal(service.Metadata.Name, ingress.Spec.Rules.Single().Http.Paths.Single().Backend.Service.Name);
    }

    [Fact]
    public void NetworkPolicy_LetsOnlyTheHubReachWorkspaces()
    {
        var policy = All().OfType<V1NetworkPolicy>().Single();
        Assert.Equal("true", policy.Spec.PodSelector.MatchLabels[KubernetesObjects.ManagedLabel]);
        var from = Assert.Single(Assert.Single(policy.Spec.Ingress).FromProperty);
        Assert.Equal("dsvm-hub", from.PodSelector.MatchLabels["app.kubernetes.io/name"]);
        Assert.Equal("8888", Assert.Single(policy.Spec.Ingress[0].Ports).Port.Value);
    }
}
