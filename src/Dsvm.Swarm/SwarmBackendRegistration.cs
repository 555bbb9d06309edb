using Dsvm.Core;
using Dsvm.Core.Workspaces;

namespace Dsvm.Swarm;

/// <summary>The <c>swarm</c> backend type: one Docker Swarm service per workspace.</summary>
public static class SwarmBackendRegistration
{
    public const string Type = "swarm";

    /// <summary>The longest <c>request-timeout</c>: a day (an engine that takes longer has hung).</summary>
    public static readonly TimeSpan MaxRequestTimeout = TimeSpan.FromDays(1);

    /// <param name="logins">Logins for the registries workspace images name (the push and the nodes' pulls); null: anonymous.</param>
    public static BackendRegistry AddSwarmBackend(this BackendRegistry registry, RegistryLogins? logins = null) => registry.Add(new BackendRegistration
    {
        Type = Type,
        Keys = ["manager", "registry", "push-registry", "local-engine", "node-engines", "gpu-resource", "constraints", "max-restarts", "request-timeout"],
        Capabilities = new BackendCapabilities { Gpu = true },
        Prepare = section =>
        {
            // Constructed now: its own checks are reported at the section; it connects on first use.
            var backend = section.Checked(() => new SwarmWorkspaceBackend(Options(section) with { Logins = logins }));
            return () => backend;
        },
        Endpoint = (section, engine) => engine == "Docker" ? $"{section.Get("manager")} (swarm manager)" : null,
        // Images are pushed from this machine's engine to the registry (or named local-engine).
        UsesLocalEngine = section => section.Get("registry") is not null || section.Get("local-engine") is not null,
    });

    public static SwarmBackendOptions Options(BackendSection s)
    {
        if (s.Uri("manager") is not { } manager)
        {
            throw new SpecValidationException([s.Error("manager", "required: the engine API of a swarm manager (unix:///var/run/docker.sock on a manager, or tcp://manager:2376)")]);
        }

        var o = new SwarmBackendOptions { ManagerEndpoint = manager };
        var engines = new Dictionary<string, Uri>(StringComparer.Ordinal);
        foreach (var (node, endpoint) in s.Pairs("node-engines"))
        {
            engines[node] = Uri.TryCreate(endpoint, UriKind.Absolute, out var uri)
                ? uri
                : throw new SpecValidationException([s.Error("node-engines", $"'{endpoint}' is not an absolute URI (e.g. unix:///var/run/docker.sock or tcp://10.0.0.2:2376)")]);
        }

        return o with
        {
            Registry = s.Get("registry"),
            PushRegistry = s.Get("push-registry"),
            LocalEngine = s.Uri("local-engine") ?? o.LocalEngine,
            NodeEngines = engines,
            GpuResource = s.Get("gpu-resource") ?? o.GpuResource,
            Constraints = (s.Get("constraints") ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries),
            MaxRestarts = s.Number("max-restarts", 0, 100, "restarts") ?? o.MaxRestarts,
            RequestTimeout = s.Duration("request-timeout", MaxRequestTimeout) ?? o.RequestTimeout,
        };
    }
}
