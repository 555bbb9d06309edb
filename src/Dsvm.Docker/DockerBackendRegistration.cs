using Dsvm.Core;
using Dsvm.Core.Workspaces;

namespace Dsvm.Docker;

/// <summary>The <c>docker</c> backend type: containers on a Docker engine (this machine's by default).</summary>
public static class DockerBackendRegistration
{
    public const string Type = "docker";

    /// <summary>The longest <c>request-timeout</c>: a day (an engine that takes longer has hung).</summary>
    public static readonly TimeSpan MaxRequestTimeout = TimeSpan.FromDays(1);

    /// <summary>Registers the <c>docker</c> type, built in (the default without a <c>backends.yaml</c>).</summary>
    /// <param name="logins">Logins for the registries workspace images name (pulled by digest); null: anonymous pulls.</param>
    public static BackendRegistry AddDockerBackend(this BackendRegistry registry, IGpuDetector gpus, RegistryLogins? logins = null) => registry.Add(new BackendRegistration
    {
        Type = Type,
        Keys = ["endpoint", "bind-address", "request-timeout"],
        Capabilities = new BackendCapabilities { Exec = true, Logs = true, Gpu = true },
        BuiltIn = true,
        Prepare = section =>
        {
            var options = Options(section) with { Logins = logins };
            return () => new DockerWorkspaceBackend(options, gpus);
        },
        Endpoint = (section, engine) => engine == "Docker" ? section.Get("endpoint") ?? DockerBackendOptions.DefaultEndpoint().ToString() : null,
        UsesLocalEngine = _ => true,
    });

    public static DockerBackendOptions Options(BackendSection section)
    {
        var options = new DockerBackendOptions();
        return options with
        {
            Endpoint = section.Uri("endpoint") ?? options.Endpoint,
            BindAddress = section.Get("bind-address") ?? options.BindAddress,
            RequestTimeout = section.Duration("request-timeout", MaxRequestTimeout) ?? options.RequestTimeout,
        };
    }
}
