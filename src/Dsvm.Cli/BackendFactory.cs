using Dsvm.Core;
using Dsvm.Core.Sizes;
using Dsvm.Core.Specs;
using Dsvm.Core.Workspaces;
using Dsvm.Docker;
using Dsvm.Images;
using Dsvm.Kubernetes;
using Dsvm.Qemu;
using Dsvm.Swarm;

namespace Dsvm.Cli;

/// <summary>
/// Turns the sections of <c>backends.yaml</c> into backends. Every section's settings are checked when the file is
/// read, with the line and key of anything wrong; the backends themselves connect on first use.
/// </summary>
public static class BackendFactory
{
    /// <summary>The configured backends: <c>DSVM_BACKENDS</c> or <c>backends.yaml</c> in the data folder, else the built-in ones.</summary>
    public static BackendConfig LoadConfig(DsvmPaths paths) =>
        BackendConfig.Load(Environment.GetEnvironmentVariable("DSVM_BACKENDS") is { Length: > 0 } f ? f : Path.Combine(paths.Data, BackendConfig.FileName));

    /// <summary>The configuration, checked against the sizes, and its backends: what the CLI and the hub both run on.</summary>
    public static (BackendConfig Config, WorkspaceBackends Backends) Load(DsvmPaths paths, SizeCatalog sizes, IGpuDetector gpus, ImageServices images)
    {
        var config = LoadConfig(paths);
        config.CheckSizes(sizes);
        return (config, Create(config, paths, gpus, images));
    }

    /// <summary>Where the configured backends of an engine ("Docker", "Kubernetes") connect, to name them in an error.</summary>
    public static IReadOnlyList<string> Endpoints(BackendConfig config, string engine) =>
        config.Backends.Select(s => (s.Type, engine) switch
        {
            ("docker", "Docker") => s.Get("endpoint") ?? DockerBackendOptions.DefaultEndpoint().ToString(),
            ("swarm", "Docker") => $"{s.Get("manager")} (swarm manager)",
            ("kubernetes", "Kubernetes") => $"the API server of {s.Get("kubeconfig") ?? "the default kubeconfig"}",
            _ => null,
        }).OfType<string>().Distinct(StringComparer.Ordinal).ToList();

    /// <summary>
    /// Checks every section's settings now (all problems at once) and returns the backends, each connected on
    /// first use only.
    /// </summary>
    public static WorkspaceBackends Create(BackendConfig config, DsvmPaths paths, IGpuDetector gpus, ImageServices images)
    {
        var errors = new List<SpecError>();
        var factories = new Dictionary<string, Func<IWorkspaceBackend>>(StringComparer.Ordinal);
        foreach (var section in config.Backends)
        {
            try
            {
                factories[section.Name] = Prepare(section, paths, gpus, images);
            }
            catch (SpecValidationException ex)
            {
                errors.AddRange(ex.Errors);
            }
        }

        return errors.Count > 0
            ? throw new SpecValidationException(errors)
            : new WorkspaceBackends(factories, config.Default, config.SizeRoutes, config.ClassRoutes);
    }

    private static readonly Dictionary<string, string[]> Keys = new(StringComparer.Ordinal)
    {
        ["docker"] = ["endpoint", "bind-address"],
        ["qemu"] = ["accelerator", "home-size", "bind-address", "start-timeout", "state-folder"],
        ["swarm"] = ["manager", "registry", "push-registry", "local-engine", "node-engines", "gpu-resource", "constraints", "max-restarts"],
        ["kubernetes"] =
        [
            "namespace", "kubeconfig", "storage-class", "home-size", "home-access-mode", "image-pull-policy", "image-registry-prefix",
            "image-pull-secret", "endpoint-mode", "endpoint-template", "node-selector", "gpu-node-selector",
        ],
    };

    /// <summary>Parses a section's settings (throws located errors) and returns how to make the backend.</summary>
    private static Func<IWorkspaceBackend> Prepare(BackendSection section, DsvmPaths paths, IGpuDetector gpus, ImageServices images)
    {
        CheckKeys(section);
        switch (section.Type)
        {
            case "docker":
                var docker = Docker(section);
                return () => new DockerWorkspaceBackend(docker, gpus);
            case "qemu":
                var qemu = Qemu(section);
                return () => new QemuWorkspaceBackend(qemu, paths, images);
            case "swarm":
                var swarm = Checked(section, () => new SwarmWorkspaceBackend(Swarm(section)));
                return () => swarm;
            default:
                // BackendConfig accepts only the four types.
                var kubernetes = Checked(section, () => new KubernetesWorkspaceBackend(Kubernetes(section)));
                return () => kubernetes;
        }
    }

    private static DockerBackendOptions Docker(BackendSection s)
    {
        var options = new DockerBackendOptions();
        if (s.Get("endpoint") is { } endpoint)
        {
            options = options with { Endpoint = Uri(s, "endpoint", endpoint) };
        }

        return s.Get("bind-address") is { } bind ? options with { BindAddress = bind } : options;
    }

    private static QemuBackendOptions Qemu(BackendSection s)
    {
        var o = new QemuBackendOptions();
        var accel = s.Get("accelerator") ?? o.Accelerator;
        if (accel is not ("auto" or "kvm" or "tcg"))
        {
            throw new SpecValidationException([s.Error("accelerator", $"'{accel}' is not an accelerator (auto, kvm, tcg)")]);
        }

        return o with
        {
            Accelerator = accel,
            HomeSize = s.Get("home-size") ?? o.HomeSize,
            BindAddress = s.Get("bind-address") ?? o.BindAddress,
            StartTimeout = Number(s, "start-timeout", 1, 7200, "seconds") is { } secs ? TimeSpan.FromSeconds(secs) : o.StartTimeout,
            StateFolder = s.Get("state-folder"),
        };
    }

    private static SwarmBackendOptions Swarm(BackendSection s)
    {
        if (s.Get("manager") is not { } manager)
        {
            throw new SpecValidationException([s.Error("manager", "required: the engine API of a swarm manager (unix:///var/run/docker.sock on a manager, or tcp://manager:2376)")]);
        }

        var o = new SwarmBackendOptions { ManagerEndpoint = Uri(s, "manager", manager) };
        var engines = new Dictionary<string, System.Uri>(StringComparer.Ordinal);
        foreach (var (node, endpoint) in Labels(s, "node-engines"))
        {
            engines[node] = Uri(s, "node-engines", endpoint);
        }

        return o with
        {
            Registry = s.Get("registry"),
            PushRegistry = s.Get("push-registry"),
            LocalEngine = s.Get("local-engine") is { } local ? Uri(s, "local-engine", local) : o.LocalEngine,
            NodeEngines = engines,
            GpuResource = s.Get("gpu-resource") ?? o.GpuResource,
            Constraints = (s.Get("constraints") ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries),
            MaxRestarts = Number(s, "max-restarts", 0, 100, "restarts") ?? o.MaxRestarts,
        };
    }

    private static KubernetesBackendOptions Kubernetes(BackendSection s)
    {
        var o = new KubernetesBackendOptions();
        var mode = s.Get("endpoint-mode") switch
        {
            null => o.EndpointMode,
            "service" => KubernetesEndpointMode.Service,
            "pod-ip" => KubernetesEndpointMode.PodIp,
            "template" => KubernetesEndpointMode.Template,
            var other => throw new SpecValidationException([s.Error("endpoint-mode", $"'{other}' is not an endpoint mode (service, pod-ip, template)")]),
        };
        return o with
        {
            Namespace = s.Get("namespace") ?? o.Namespace,
            KubeconfigPath = s.Get("kubeconfig") is { } k ? ExpandHome(k) : null,
            StorageClass = s.Get("storage-class"),
            HomeSize = s.Get("home-size") ?? o.HomeSize,
            HomeAccessMode = s.Get("home-access-mode") ?? o.HomeAccessMode,
            ImagePullPolicy = s.Get("image-pull-policy") ?? o.ImagePullPolicy,
            ImageRegistryPrefix = s.Get("image-registry-prefix"),
            ImagePullSecret = s.Get("image-pull-secret"),
            EndpointMode = mode,
            EndpointTemplate = s.Get("endpoint-template"),
            NodeSelector = Labels(s, "node-selector"),
            GpuNodeSelector = Labels(s, "gpu-node-selector"),
        };
    }

    /// <summary><c>key=value,key=value</c>.</summary>
    private static Dictionary<string, string> Labels(BackendSection s, string key)
    {
        var result = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var pair in (s.Get(key) ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var eq = pair.IndexOf('=', StringComparison.Ordinal);
            if (eq <= 0)
            {
                throw new SpecValidationException([s.Error(key, $"'{pair}' is not key=value (e.g. accelerator=nvidia,zone=a)")]);
            }

            result[pair[..eq]] = pair[(eq + 1)..];
        }

        return result;
    }

    /// <summary>A whole number in [min, max], or null when the setting is absent.</summary>
    private static int? Number(BackendSection s, string key, int min, int max, string what) =>
        s.Get(key) is not { } text
            ? null
            : int.TryParse(text, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var n) && n >= min && n <= max
                ? n
                : throw new SpecValidationException([s.Error(key, $"'{text}' is not a number of {what} ({min}-{max})")]);

    private static string ExpandHome(string path) =>
        path.StartsWith("~/", StringComparison.Ordinal) ? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), path[2..]) : path;

    /// <summary>A backend's own validation (a UsageException from its constructor) reported at the section.</summary>
    private static T Checked<T>(BackendSection s, Func<T> create)
    {
        try
        {
            return create();
        }
        catch (UsageException ex)
        {
            throw new SpecValidationException([new SpecError(s.File, s.Line, s.Column, $"backends.{s.Name}", ex.Message)]);
        }
    }

    private static Uri Uri(BackendSection s, string key, string value) =>
        System.Uri.TryCreate(value, UriKind.Absolute, out var uri)
            ? uri
            : throw new SpecValidationException([s.Error(key, $"'{value}' is not an absolute URI (e.g. unix:///var/run/docker.sock or tcp://10.0.0.2:2376)")]);

    private static void CheckKeys(BackendSection section)
    {
        var allowed = Keys[section.Type];
        var errors = section.Settings.Keys.Where(k => !allowed.Contains(k))
            .Select(k => section.Error(k, $"unknown setting '{k}' for a {section.Type} backend{SpecLoader.Suggest(k, allowed)} (allowed: {string.Join(", ", allowed)})"))
            .ToList();
        if (errors.Count > 0)
        {
            throw new SpecValidationException(errors);
        }
    }
}
