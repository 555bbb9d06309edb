using Dsvm.Core.Specs;
using Dsvm.Core.Workspaces;

namespace Dsvm.Core.Tests;

/// <summary>Stand-ins for the four backend types (the real registrations live in the backend projects).</summary>
internal static class TestBackendTypes
{
    public static BackendRegistry Registry { get; } = Create();

    public static BackendRegistry Create() => new BackendRegistry()
        .Add(Type("docker", builtIn: true, ["endpoint", "bind-address"]))
        .Add(Type("qemu", builtIn: true, ["accelerator"]))
        .Add(Type("swarm", builtIn: false, ["manager", "registry"]))
        .Add(Type("kubernetes", builtIn: false, ["namespace", "kubeconfig"]));

    private static BackendRegistration Type(string name, bool builtIn, string[] keys) => new()
    {
        Type = name,
        Keys = keys,
        BuiltIn = builtIn,
        Capabilities = new BackendCapabilities { Exec = name == "docker" },
        Prepare = s => () => new FakeBackend { Name = s.Type },
        UsesLocalEngine = _ => name is "docker" or "qemu",
    };
}

public sealed class BackendRegistryTests
{
    private const string File = "/etc/dsvm/backends.yaml";

    [Fact]
    public void An_unknown_type_is_located_at_its_type_setting_and_lists_the_registered_types()
    {
        var ex = Assert.Throws<SpecValidationException>(() => BackendConfig.Parse("backends:\n  cluster:\n    namespace: dsvm\n    type: nomad\n", File, TestBackendTypes.Registry));
        var error = Assert.Single(ex.Errors);
        Assert.Equal($"{File}:4:11: backends.cluster.type: 'nomad' is not a backend type (types: docker, qemu, swarm, kubernetes; name the section after one or give type:)", error.ToString());
    }

    [Fact]
    public void A_section_of_an_unregistered_type_is_never_made_into_another_backend()
    {
        // A configuration read against a registry that lacks the type (or built by hand): a located error, not a fallback.
        var config = BackendConfig.Parse("backends:\n  cluster: { type: kubernetes }\n", File, TestBackendTypes.Registry);
        var withoutKubernetes = new BackendRegistry()
            .Add(new BackendRegistration { Type = "docker", Keys = [], Capabilities = new(), Prepare = _ => () => new FakeBackend() });

        var ex = Assert.Throws<SpecValidationException>(() => withoutKubernetes.Create(config));
        var error = Assert.Single(ex.Errors);
        Assert.Equal($"{File}:2:20: backends.cluster.type: 'kubernetes' is not a backend type (types: docker; name the section after one or give type:)", error.ToString());
    }

    [Fact]
    public void Unknown_settings_are_located_and_every_section_is_checked_at_once()
    {
        var config = BackendConfig.Parse("backends:\n  docker:\n    endpont: x\n  k8s:\n    type: kubernetes\n    namespce: dsvm\n", File, TestBackendTypes.Registry);
        var ex = Assert.Throws<SpecValidationException>(() => TestBackendTypes.Registry.Create(config));
        Assert.Equal(
            [
                $"{File}:3:14: backends.docker.endpont: unknown setting 'endpont' for a docker backend (did you mean 'endpoint'?) (allowed: endpoint, bind-address)",
                $"{File}:6:15: backends.k8s.namespce: unknown setting 'namespce' for a kubernetes backend (did you mean 'namespace'?) (allowed: namespace, kubeconfig)",
            ],
            ex.Errors.Select(e => e.ToString()));
    }

    [Fact]
    public void Built_in_backends_come_from_the_registry_the_first_the_default()
    {
        var config = BackendConfig.Load(null, TestBackendTypes.Registry);
        Assert.Equal("docker", config.Default);
        Assert.Equal(["docker", "qemu"], config.Backends.Select(b => b.Name));
        Assert.True(TestBackendTypes.Registry.UsesLocalEngine(config));

        var none = new BackendRegistry().Add(new BackendRegistration { Type = "kubernetes", Keys = [], Capabilities = new(), Prepare = _ => () => new FakeBackend() });
        var ex = Assert.Throws<SpecValidationException>(() => BackendConfig.Parse("default: x\n", File, none));
        Assert.Contains("no backend configured (types: kubernetes)", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Capabilities_and_the_local_engine_follow_each_configured_backend()
    {
        var config = BackendConfig.Parse("backends:\n  k8s: { type: kubernetes }\n  docker: {}\n", File, TestBackendTypes.Registry);
        Assert.True(TestBackendTypes.Registry.CapabilitiesOf(config, "docker").Exec);
        Assert.False(TestBackendTypes.Registry.CapabilitiesOf(config, "k8s").Exec);
        Assert.False(TestBackendTypes.Registry.CapabilitiesOf(config, "nowhere").Exec);

        var clusterOnly = BackendConfig.Parse("backends:\n  k8s: { type: kubernetes }\n", File, TestBackendTypes.Registry);
        Assert.False(TestBackendTypes.Registry.UsesLocalEngine(clusterOnly));
        Assert.Equal("k8s", clusterOnly.Default);
        Assert.Equal("kubernetes", TestBackendTypes.Registry.Create(clusterOnly).Default.Name);
    }

    [Fact]
    public void A_type_is_registered_once()
    {
        var ex = Assert.Throws<InvalidOperationException>(() => TestBackendTypes.Create().Add(new BackendRegistration { Type = "docker", Keys = [], Capabilities = new(), Prepare = _ => () => new FakeBackend() }));
        Assert.Contains("registered twice", ex.Message, StringComparison.Ordinal);
    }
}
