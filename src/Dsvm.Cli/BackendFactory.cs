using Dsvm.Core;
using Dsvm.Core.Sizes;
using Dsvm.Core.Workspaces;
using Dsvm.Docker;
using Dsvm.Images;
using Dsvm.Images.Registry;
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
    /// <param name="logins">Registry logins for pulls (docker) and for pushes and the nodes' pulls (swarm); by default <c>DSVM_REGISTRY_*</c> or <c>DATA/registries.json</c>.</param>
    /// <param name="images">The image services (the qemu backend exports disks with them), asked when a backend is made.</param>
    public static BackendRegistry Registry(DsvmPaths paths, IGpuDetector gpus, Func<ImageServices> images, RegistryLogins? logins = null)
    {
        logins ??= StoredLogins(paths);
        return new BackendRegistry()
            .AddDockerBackend(gpus, logins)
            .AddQemuBackend(paths, images)
            .AddSwarmBackend(logins)
            .AddKubernetesBackend();
    }

    /// <summary>Logins from this machine's configuration (<see cref="RegistryCredentialStore"/>), read when a pull needs one.</summary>
    public static RegistryLogins StoredLogins(DsvmPaths paths) => host => RegistryCredentialStore.Find(paths, RegistryAddress.Parse(host));

    /// <summary>
    /// The hub's logins: <c>Hub:Registry</c>'s user for its own registry (the catalog's images come from there), the
    /// machine's configuration for any other.
    /// </summary>
    public static RegistryLogins HubLogins(DsvmPaths paths, string? registryUrl, string? username, string? password, string? pullAddress = null)
    {
        var stored = StoredLogins(paths);
        // A bad Url is reported, with its key, where the catalog is set up; here it only means "not ours". The images
        // the catalog offers name the pull address when there is one: that is the host a backend's engine logs in to.
        var own = string.IsNullOrEmpty(username) || string.IsNullOrEmpty(password)
            ? []
            : new[] { registryUrl, pullAddress }.Select(a => RegistryAddress.TryParse(a, out var address) ? address.Host : null).OfType<string>().ToList();
        return host => own.Contains(host, StringComparer.OrdinalIgnoreCase) ? new RegistryLogin(username!, password!) : stored(host);
    }

    /// <summary>
    /// The engine images are built on and looked up in: the default backend's when it is a docker backend (its
    /// <c>endpoint</c> and <c>request-timeout</c> in backends.yaml), so that a workspace finds its image on the engine it starts on; otherwise this
    /// machine's (<c>DOCKER_HOST</c> or the local socket), where the Swarm and qemu backends take their images from.
    /// </summary>
    public static DockerBackendOptions ImageEngine(BackendConfig config) =>
        config.Backends.FirstOrDefault(b => b.Name == config.Default) is { Type: DockerBackendRegistration.Type } section
            ? DockerBackendRegistration.Options(section)
            : new DockerBackendOptions();

    /// <summary>Image services on <see cref="ImageEngine"/>, with its endpoint and request timeout.</summary>
    public static ImageServices ImagesOn(DsvmPaths paths, BackendConfig config)
    {
        var engine = ImageEngine(config);
        return new ImageServices(paths, engine: engine.Endpoint, engineTimeout: engine.RequestTimeout);
    }

    /// <summary>The image services of the <c>env</c> commands, on <see cref="ImageEngine"/> of the configured backends.</summary>
    public static ImageServices Images(DsvmPaths paths)
    {
        ImageServices? images = null;
        var config = LoadConfig(paths, Registry(paths, new NvidiaGpuDetector(), () => images!));
        return images = ImagesOn(paths, config);
    }

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
