using Dsvm.Core.Specs;

namespace Dsvm.Core.Workspaces;

/// <summary>What a backend type can do beyond <see cref="IWorkspaceBackend"/>, for commands that need more.</summary>
public sealed record BackendCapabilities
{
    /// <summary>Commands run inside a workspace (<c>dsvm exec</c>; the hub's exec through <see cref="IWorkspaceExec"/>).</summary>
    public bool Exec { get; init; }

    /// <summary>The server's log followed live from the engine (<c>dsvm logs -f</c>); every backend gives the last lines.</summary>
    public bool Logs { get; init; }

    /// <summary>GPU sizes run here (devices, generic resources or <c>nvidia.com/gpu</c>).</summary>
    public bool Gpu { get; init; }
}

/// <summary>
/// One backend type, as its project registers it (<c>registry.AddDockerBackend(…)</c>): the <c>type:</c> name in
/// <c>backends.yaml</c>, the settings a section may have, how a section becomes a backend, and what it can do.
/// </summary>
public sealed record BackendRegistration
{
    public required string Type { get; init; }

    /// <summary>The settings a section of this type may have (anything else is a located error).</summary>
    public required IReadOnlyList<string> Keys { get; init; }

    public required BackendCapabilities Capabilities { get; init; }

    /// <summary>
    /// Parses and checks a section's settings now (throws <see cref="SpecValidationException"/> with the file, line and
    /// key of each problem) and returns how to make the backend, which connects on first use only.
    /// </summary>
    public required Func<BackendSection, Func<IWorkspaceBackend>> Prepare { get; init; }

    /// <summary>Where a section's backend connects, when it uses that engine ("Docker", "Kubernetes"): named in engine errors.</summary>
    public Func<BackendSection, string, string?> Endpoint { get; init; } = (_, _) => null;

    /// <summary>Whether a section needs this machine's Docker engine (its images are built and listed there).</summary>
    public Func<BackendSection, bool> UsesLocalEngine { get; init; } = _ => false;

    /// <summary>Configured (under its type name) when there is no <c>backends.yaml</c>, in registration order; the first is the default.</summary>
    public bool BuiltIn { get; init; }
}

/// <summary>
/// The backend types this program knows: each backend project adds itself (<c>AddDockerBackend</c>,
/// <c>AddKubernetesBackend</c>, …); the CLI and the hub compose the same registry. Core knows no type by name.
/// </summary>
public sealed class BackendRegistry
{
    private readonly List<BackendRegistration> _types = [];

    public BackendRegistry Add(BackendRegistration registration)
    {
        if (Find(registration.Type) is not null)
        {
            throw new InvalidOperationException($"backend type '{registration.Type}' is registered twice");
        }

        _types.Add(registration);
        return this;
    }

    /// <summary>The registered type names, in registration order.</summary>
    public IReadOnlyList<string> Types => [.. _types.Select(t => t.Type)];

    public BackendRegistration? Find(string type) => _types.FirstOrDefault(t => t.Type == type);

    /// <summary>The sections configured without a file: each built-in type under its own name.</summary>
    public IReadOnlyList<BackendSection> BuiltIn =>
        [.. _types.Where(t => t.BuiltIn).Select(t => new BackendSection(t.Type, t.Type, new Dictionary<string, BackendSetting>(), "(built-in)", 0, 0))];

    /// <summary>The registration of a configured section; an unregistered type is a located error listing the registered ones.</summary>
    public BackendRegistration Of(BackendSection section) =>
        Find(section.Type) ?? throw new SpecValidationException([UnknownType(section.Type, section.TypeError)]);

    internal SpecError UnknownType(string type, Func<string, SpecError> at) =>
        at($"'{type}' is not a backend type{SpecLoader.Suggest(type, Types)} (types: {string.Join(", ", Types)}; name the section after one or give type:)");

    /// <summary>The capabilities of a configured backend, by its name; none when no such backend is configured.</summary>
    public BackendCapabilities CapabilitiesOf(BackendConfig config, string backend) =>
        config.Backends.FirstOrDefault(b => b.Name == backend) is { } s && Find(s.Type) is { } r ? r.Capabilities : new BackendCapabilities();

    /// <summary>Whether any configured backend needs this machine's Docker engine.</summary>
    public bool UsesLocalEngine(BackendConfig config) => config.Backends.Any(UsesLocalEngine);

    public bool UsesLocalEngine(BackendSection section) => Find(section.Type) is { } r && r.UsesLocalEngine(section);

    /// <summary>Where the configured backends of an engine ("Docker", "Kubernetes") connect, to name them in an error.</summary>
    public IReadOnlyList<string> Endpoints(BackendConfig config, string engine) =>
        [.. config.Backends.Select(s => Find(s.Type)?.Endpoint(s, engine)).OfType<string>().Distinct(StringComparer.Ordinal)];

    /// <summary>
    /// Checks every section's type and settings now (all problems at once) and returns the backends, each connected
    /// on first use only.
    /// </summary>
    public WorkspaceBackends Create(BackendConfig config)
    {
        var errors = new List<SpecError>();
        var factories = new Dictionary<string, Func<IWorkspaceBackend>>(StringComparer.Ordinal);
        foreach (var section in config.Backends)
        {
            try
            {
                var registration = Of(section);
                CheckKeys(section, registration);
                factories[section.Name] = registration.Prepare(section);
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

    private static void CheckKeys(BackendSection section, BackendRegistration registration)
    {
        var allowed = registration.Keys;
        var errors = section.Settings.Keys.Where(k => !allowed.Contains(k))
            .Select(k => section.Error(k, $"unknown setting '{k}' for a {section.Type} backend{SpecLoader.Suggest(k, allowed)} (allowed: {string.Join(", ", allowed)})"))
            .ToList();
        if (errors.Count > 0)
        {
            throw new SpecValidationException(errors);
        }
    }
}
