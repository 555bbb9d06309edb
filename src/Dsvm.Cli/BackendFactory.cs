using Dsvm.Core;
using Dsvm.Core.Sizes;
using Dsvm.Core.Workspaces;
using Dsvm.Docker;
using Dsvm.Images;
using Dsvm.Kubernetes;
using Dsvm.Qemu;
using Dsvm.Swarm;

namespace Dsvm.Cli;

/// <summary>
/// The one composition of backends, which the CLI and the hub both run on: every backend project registers its type
/// (its settings, how a section becomes a backend, its capabilities); <c>backends.yaml</c> is read against them.
/// A new backend adds one <c>Add…Backend</c> call here. A plain registry rather than a DI container: no command
/// pays for a service provider it does not use.
/// </summary>
public static class BackendFactory
{
    /// <summary>The backend types this program knows, in the order of their built-in defaults (docker first).</summary>
    public static BackendRegistry Registry(DsvmPaths paths, IGpuDetector gpus, ImageServices images) =>
        new BackendRegistry()
            .AddDockerBackend(gpus)
            .AddQemuBackend(paths, images)
            .AddSwarmBackend()
            .AddKubernetesBackend();

    /// <summary>The configured backends: <c>DSVM_BACKENDS</c> or <c>backends.yaml</c> in the data folder, else the built-in ones.</summary>
    public static BackendConfig LoadConfig(DsvmPaths paths, BackendRegistry registry) =>
        BackendConfig.Load(Environment.GetEnvironmentVariable("DSVM_BACKENDS") is { Length: > 0 } f ? f : Path.Combine(paths.Data, BackendConfig.FileName), registry);

    /// <summary>The configuration, checked against the sizes, and its backends (each connected on first use only).</summary>
    public static (BackendConfig Config, WorkspaceBackends Backends) Load(DsvmPaths paths, SizeCatalog sizes, BackendRegistry registry)
    {
        var config = LoadConfig(paths, registry);
        config.CheckSizes(sizes);
        return (config, registry.Create(config));
    }
}
