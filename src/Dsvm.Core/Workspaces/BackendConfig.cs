using Dsvm.Core.Sizes;
using Dsvm.Core.Specs;
using YamlDotNet.RepresentationModel;

namespace Dsvm.Core.Workspaces;

/// <summary>One setting of a backend section, with where it was written (for located errors).</summary>
public sealed record BackendSetting(string Value, int Line, int Column);

/// <summary>
/// A configured backend: its name, its type (a registered one: see <see cref="BackendRegistry"/>) and its settings,
/// with the helpers backend registrations parse them with (every error names the file, line and key).
/// </summary>
public sealed record BackendSection(string Name, string Type, IReadOnlyDictionary<string, BackendSetting> Settings, string File, int Line, int Column)
{
    /// <summary>Where <c>type:</c> was written, when it was (else the section's name gave the type).</summary>
    public BackendSetting? TypeSetting { get; init; }

    public string? Get(string key) => Settings.TryGetValue(key, out var s) ? s.Value : null;

    /// <summary>An error at the setting (or the section when the setting is absent).</summary>
    public SpecError Error(string key, string message)
    {
        var at = Settings.TryGetValue(key, out var s) ? (s.Line, s.Column) : (Line, Column);
        return new SpecError(File, at.Item1, at.Item2, $"backends.{Name}.{key}", message);
    }

    /// <summary>An error about the section's type, at its <c>type:</c> setting or its name.</summary>
    public SpecError TypeError(string message) =>
        new(File, TypeSetting?.Line ?? Line, TypeSetting?.Column ?? Column, $"backends.{Name}.type", message);

    /// <summary>An absolute URI, or null when the setting is absent.</summary>
    public Uri? Uri(string key) =>
        Get(key) is not { } value ? null
        : System.Uri.TryCreate(value, UriKind.Absolute, out var uri) ? uri
        : throw new SpecValidationException([Error(key, $"'{value}' is not an absolute URI (e.g. unix:///var/run/docker.sock or tcp://10.0.0.2:2376)")]);

    /// <summary>A whole number in [min, max], or null when the setting is absent.</summary>
    public int? Number(string key, int min, int max, string what) =>
        Get(key) is not { } text
            ? null
            : int.TryParse(text, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var n) && n >= min && n <= max
                ? n
                : throw new SpecValidationException([Error(key, $"'{text}' is not a number of {what} ({min}-{max})")]);

    /// <summary>
    /// A duration in (0, <paramref name="max"/>]: a number with the unit <c>ms</c>, <c>s</c>, <c>m</c> or <c>h</c>
    /// (<c>30s</c>, <c>1.5m</c>), or a bare number of seconds; null when the setting is absent.
    /// </summary>
    public TimeSpan? Duration(string key, TimeSpan max)
    {
        if (Get(key) is not { } text)
        {
            return null;
        }

        var value = text.Trim();
        var (number, unit) = value.EndsWith("ms", StringComparison.Ordinal) ? (value[..^2], TimeSpan.FromMilliseconds(1))
            : value.EndsWith('s') ? (value[..^1], TimeSpan.FromSeconds(1))
            : value.EndsWith('m') ? (value[..^1], TimeSpan.FromMinutes(1))
            : value.EndsWith('h') ? (value[..^1], TimeSpan.FromHours(1))
            : (value, TimeSpan.FromSeconds(1));
        // Decimal, not double: no exponent, NaN or infinity gets through.
        if (decimal.TryParse(number, System.Globalization.NumberStyles.AllowDecimalPoint, System.Globalization.CultureInfo.InvariantCulture, out var n)
            && n > 0 && n * unit.Ticks <= max.Ticks && (long)(n * unit.Ticks) > 0)
        {
            return TimeSpan.FromTicks((long)(n * unit.Ticks));
        }

        throw new SpecValidationException([Error(key, $"'{text}' is not a duration above 0 and at most {max.TotalHours:0.##} h (e.g. 30s, 2m, 500ms)")]);
    }

    /// <summary><c>key=value,key=value</c> (empty when the setting is absent).</summary>
    public Dictionary<string, string> Pairs(string key)
    {
        var result = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var pair in (Get(key) ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var eq = pair.IndexOf('=', StringComparison.Ordinal);
            if (eq <= 0)
            {
                throw new SpecValidationException([Error(key, $"'{pair}' is not key=value (e.g. accelerator=nvidia,zone=a)")]);
            }

            result[pair[..eq]] = pair[(eq + 1)..];
        }

        return result;
    }

    /// <summary>A file path, <c>~/</c> expanded to the user's home; null when the setting is absent.</summary>
    public string? FilePath(string key) =>
        Get(key) is not { } path ? null
        : path.StartsWith("~/", StringComparison.Ordinal) ? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), path[2..])
        : path;

    /// <summary>A backend's own validation (a <see cref="UsageException"/> from its constructor) reported at the section.</summary>
    public T Checked<T>(Func<T> create)
    {
        try
        {
            return create();
        }
        catch (UsageException ex)
        {
            throw new SpecValidationException([new SpecError(File, Line, Column, $"backends.{Name}", ex.Message)]);
        }
    }
}

/// <summary>
/// <c>backends.yaml</c>: which engines run workspaces and which sizes go where. Without the file, the registry's
/// built-in backends (the local Docker engine, and <c>qemu</c> VMs on this machine when asked for by name).
/// <code>
/// default: docker
/// backends:
///   docker: {}
///   swarm: { manager: "tcp://10.0.0.2:2376", registry: "10.0.0.2:5000" }
///   gpu-cluster: { type: kubernetes, namespace: dsvm }
/// routes:
///   sizes: { gpu-small: gpu-cluster }
///   classes: { memory: swarm }
/// </code>
/// </summary>
public sealed record BackendConfig
{
    public const string FileName = "backends.yaml";

    public required string Default { get; init; }

    public IReadOnlyList<BackendSection> Backends { get; init; } = [];

    public IReadOnlyDictionary<string, string> SizeRoutes { get; init; } = new Dictionary<string, string>();

    public IReadOnlyDictionary<SizeClass, string> ClassRoutes { get; init; } = new Dictionary<SizeClass, string>();

    /// <summary>Where each size route is written (file, line, column, key path), for errors found once the sizes are known.</summary>
    public IReadOnlyDictionary<string, SpecError> SizeRouteLocations { get; init; } = new Dictionary<string, SpecError>();

    /// <summary>The registry's built-in backends, the first the default.</summary>
    public static BackendConfig BuiltIn(BackendRegistry registry) =>
        registry.BuiltIn is [var first, ..] builtIn
            ? new() { Default = first.Name, Backends = builtIn }
            : throw new UsageException("no backend type is built in: configure backends.yaml");

    /// <summary>The user's file when it exists, else the registry's built-in backends.</summary>
    public static BackendConfig Load(string? file, BackendRegistry registry) =>
        file is not null && File.Exists(file) ? Parse(SpecYaml.ReadFile(file), file, registry) : BuiltIn(registry);

    private static readonly string[] TopKeys = ["default", "backends", "routes"];
    private static readonly string[] RouteKeys = ["sizes", "classes"];

    /// <summary>Parses the file against the registered types; every problem is reported at once with its line and key.</summary>
    public static BackendConfig Parse(string text, string file, BackendRegistry registry)
    {
        var errors = new List<SpecError>();
        void Err(YamlNode n, string path, string msg) => errors.Add(new SpecError(file, (int)n.Start.Line, (int)n.Start.Column, path, msg));

        var root = SpecYaml.LoadMapping(text, file, "expected a mapping with default, backends and routes");
        UnknownKeys(root, "", TopKeys, Err);
        var sections = new List<BackendSection>();
        if (Child(root, "backends") is { } backendsNode)
        {
            if (backendsNode is not YamlMappingNode backends)
            {
                Err(backendsNode, "backends", "expected a mapping of backend names to their settings");
            }
            else
            {
                foreach (var (keyNode, valueNode) in backends.Children)
                {
                    var name = (keyNode as YamlScalarNode)?.Value ?? "";
                    if (!SpecLoader.NamePattern().IsMatch(name))
                    {
                        Err(keyNode, $"backends.{name}", $"'{name}' is not a valid backend name (lowercase letters, digits and '-')");
                        continue;
                    }

                    var settings = new Dictionary<string, BackendSetting>(StringComparer.Ordinal);
                    if (valueNode is YamlMappingNode map)
                    {
                        foreach (var (k, v) in map.Children)
                        {
                            var key = (k as YamlScalarNode)?.Value ?? "";
                            if (v is YamlScalarNode sv)
                            {
                                settings[key] = new BackendSetting(sv.Value ?? "", (int)v.Start.Line, (int)v.Start.Column);
                            }
                            else
                            {
                                Err(v, $"backends.{name}.{key}", "expected a single value");
                            }
                        }
                    }
                    else if (valueNode is not YamlScalarNode { Value: null or "" })
                    {
                        Err(valueNode, $"backends.{name}", "expected a mapping of settings (or {})");
                        continue;
                    }

                    var type = settings.TryGetValue("type", out var t) ? t.Value : name;
                    settings.Remove("type");
                    var section = new BackendSection(name, type, settings, file, (int)keyNode.Start.Line, (int)keyNode.Start.Column) { TypeSetting = t };
                    if (registry.Find(type) is null)
                    {
                        errors.Add(registry.UnknownType(type, section.TypeError));
                        continue;
                    }

                    sections.Add(section);
                }
            }
        }

        var builtIn = registry.BuiltIn;
        if (sections.Count == 0)
        {
            if (builtIn.Count == 0 && errors.Count == 0)
            {
                throw new SpecValidationException([new SpecError(file, 1, 1, "backends", $"no backend configured (types: {string.Join(", ", registry.Types)})")]);
            }

            sections.AddRange(builtIn);
        }

        var names = sections.Select(s => s.Name).ToList();
        var known = names.ToHashSet(StringComparer.Ordinal);
        var listed = string.Join(", ", names.Take(20)) + (names.Count > 20 ? ", …" : "");
        string? Route(YamlNode node, string path)
        {
            var value = (node as YamlScalarNode)?.Value;
            if (value is null || !known.Contains(value))
            {
                Err(node, path, $"'{value}' is not a configured backend{SpecLoader.Suggest(value ?? "", names)} (configured: {listed})");
                return null;
            }

            return value;
        }

        // The first built-in type when it is configured (the local engine), else the first backend listed.
        var defaultName = builtIn is [var first, ..] && names.Contains(first.Name) ? first.Name : names.FirstOrDefault() ?? "";
        if (Child(root, "default") is { } defaultNode)
        {
            defaultName = Route(defaultNode, "default") ?? defaultName;
        }

        var sizeRoutes = new Dictionary<string, string>(StringComparer.Ordinal);
        var sizeRouteAt = new Dictionary<string, SpecError>(StringComparer.Ordinal);
        var classRoutes = new Dictionary<SizeClass, string>();
        if (Child(root, "routes") is { } routesNode)
        {
            if (routesNode is not YamlMappingNode routes)
            {
                Err(routesNode, "routes", "expected a mapping with sizes and classes");
            }
            else
            {
                UnknownKeys(routes, "routes.", RouteKeys, Err);
                foreach (var (k, v) in Mapping(routes, "sizes", "routes.sizes", Err))
                {
                    if (Route(v, $"routes.sizes.{k.Value}") is { } b)
                    {
                        sizeRoutes[k.Value ?? ""] = b;
                        sizeRouteAt[k.Value ?? ""] = new SpecError(file, (int)k.Start.Line, (int)k.Start.Column, $"routes.sizes.{k.Value}", "");
                    }
                }

                foreach (var (k, v) in Mapping(routes, "classes", "routes.classes", Err))
                {
                    if (!Enum.TryParse<SizeClass>(k.Value, ignoreCase: true, out var cls) || int.TryParse(k.Value, out _))
                    {
                        Err(k, $"routes.classes.{k.Value}", $"'{k.Value}' is not a size class (general, memory, gpu)");
                    }
                    else if (Route(v, $"routes.classes.{k.Value}") is { } b)
                    {
                        classRoutes[cls] = b;
                    }
                }
            }
        }

        if (errors.Count > 0)
        {
            throw new SpecValidationException(errors);
        }

        return new BackendConfig { Default = defaultName, Backends = sections, SizeRoutes = sizeRoutes, ClassRoutes = classRoutes, SizeRouteLocations = sizeRouteAt };
    }

    /// <summary>Size routes must name sizes that exist (checked once the catalog is known).</summary>
    public void CheckSizes(SizeCatalog sizes)
    {
        var names = sizes.All.Select(m => m.Name).ToList();
        var unknown = SizeRoutes.Keys.Where(s => !sizes.Contains(s)).ToList();
        if (unknown.Count > 0)
        {
            throw new SpecValidationException([.. unknown.Select(s =>
                (SizeRouteLocations.TryGetValue(s, out var at) ? at : new SpecError(Backends[0].File, 0, 0, $"routes.sizes.{s}", "")) with
                {
                    Message = $"no size '{s}'{SpecLoader.Suggest(s, names)} (see `dsvm sizes`)",
                })]);
        }
    }

    private static YamlNode? Child(YamlMappingNode map, string key) => map.Children.TryGetValue(new YamlScalarNode(key), out var n) ? n : null;

    private static IEnumerable<(YamlScalarNode Key, YamlNode Value)> Mapping(YamlMappingNode parent, string key, string path, Action<YamlNode, string, string> err)
    {
        if (Child(parent, key) is not { } node)
        {
            yield break;
        }

        if (node is not YamlMappingNode map)
        {
            err(node, path, "expected a mapping to backend names");
            yield break;
        }

        foreach (var (k, v) in map.Children)
        {
            if (k is YamlScalarNode sk)
            {
                yield return (sk, v);
            }
        }
    }

    private static void UnknownKeys(YamlMappingNode map, string prefix, string[] allowed, Action<YamlNode, string, string> err)
    {
        foreach (var k in map.Children.Keys.OfType<YamlScalarNode>().Where(k => !allowed.Contains(k.Value)))
        {
            err(k, prefix + k.Value, $"unknown key '{k.Value}'{SpecLoader.Suggest(k.Value ?? "", allowed)} (allowed: {string.Join(", ", allowed)})");
        }
    }
}
