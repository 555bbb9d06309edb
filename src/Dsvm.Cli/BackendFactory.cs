using Dsvm.Core;
using Dsvm.Core.Specs;
using Dsvm.Core.Workspaces;
using Dsvm.Docker;
using Dsvm.Images;

namespace Dsvm.Cli;

/// <summary>
/// Turns the sections of <c>backends.yaml</c> into backends. Each type's settings are checked here, with the line
/// and key of anything wrong, when the backend is first used.
/// </summary>
public static class BackendFactory
{
    /// <summary>The configured backends: <c>DSVM_BACKENDS</c> or <c>backends.yaml</c> in the data folder, else the built-in ones.</summary>
    public static BackendConfig LoadConfig(DsvmPaths paths) =>
        BackendConfig.Load(Environment.GetEnvironmentVariable("DSVM_BACKENDS") is { Length: > 0 } f ? f : Path.Combine(paths.Data, BackendConfig.FileName));

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
        ["qemu"] = [],
        ["swarm"] = [],
        ["kubernetes"] = [],
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
            default:
                return () => throw new UsageException($"backend type '{section.Type}' is not available in this build");
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

    private static Uri Uri(BackendSection s, string key, string value) =>
        System.Uri.TryCreate(value, UriKind.Absolute, out var uri)
            ? uri
            : throw new SpecValidationException([s.Error(key, $"'{value}' is not an absolute URI (e.g. unix:///var/run/docker.sock or tcp://10.0.0.2:2376)")]);

    private static void CheckKeys(BackendSection section)
    {
        var allowed = Keys[section.Type];
        var errors = section.Settings.Keys.Where(k => !allowed.Contains(k))
            .Select(k => section.Error(k, $"unknown setting '{k}' for a {section.Type} backend{SpecLoader.Suggest(k, allowed)}" +
                (allowed.Length == 0 ? " (it takes none)" : $" (allowed: {string.Join(", ", allowed)})")))
            .ToList();
        if (errors.Count > 0)
        {
            throw new SpecValidationException(errors);
        }
    }
}
