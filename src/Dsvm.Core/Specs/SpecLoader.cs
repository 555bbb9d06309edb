using System.Security.Cryptography;
using System.Text.RegularExpressions;
using YamlDotNet.RepresentationModel;

namespace Dsvm.Core.Specs;

/// <summary>
/// Reads <c>environment.yaml</c> strictly: unknown keys, wrong types, unknown toolsets, bad names and missing
/// files are all reported at once, each with file, line, column and key path.
/// </summary>
public static partial class SpecLoader
{
    public const string FileName = "environment.yaml";

    private static readonly string[] TopKeys =
        ["name", "description", "base", "toolsets", "packages", "samples", "files", "env", "kernels", "gpu", "checks", "pip"];
    private static readonly string[] BaseKeys = ["distribution", "suite", "components", "mirror"];
    private static readonly string[] FileKeys = ["source", "target"];
    private static readonly string[] CheckKeys = ["python", "r", "notebooks", "commands"];
    private static readonly string[] KnownComponents = ["main", "contrib", "non-free", "non-free-firmware"];

    /// <summary>Loads the spec from a directory (holding <c>environment.yaml</c>) or a spec file path.</summary>
    public static EnvironmentSpec Load(string path, ToolsetCatalog catalog)
    {
        var file = Directory.Exists(path) ? Path.Combine(path, FileName) : path;
        if (!File.Exists(file))
        {
            throw new NotFoundException(
                Directory.Exists(path)
                    ? $"{path}: no {FileName} in this folder"
                    : $"{path}: no such environment folder or spec file");
        }

        var text = SpecYaml.ReadFile(file);
        return Parse(text, file, Path.GetDirectoryName(Path.GetFullPath(file))!, catalog);
    }

    /// <summary>Parses spec text. <paramref name="directory"/> is where relative paths (samples, files) resolve.</summary>
    public static EnvironmentSpec Parse(string text, string file, string directory, ToolsetCatalog catalog)
    {
        var ctx = new Context(file);
        YamlMappingNode? root = null;
        var stream = SpecYaml.Load(text, file);
        if (stream.Documents.Count == 0)
        {
            throw new SpecValidationException([new SpecError(file, 1, 1, "", "the file is empty")]);
        }

        if (stream.Documents.Count > 1)
        {
            var second = stream.Documents[1].RootNode;
            ctx.Add(second, "", "only one YAML document is allowed");
        }

        root = ctx.Mapping(stream.Documents[0].RootNode, "");

        if (root is null)
        {
            throw new SpecValidationException(ctx.Errors);
        }

        ctx.CheckKeys(root, "", TopKeys);
        var name = ctx.RequiredScalar(root, "name", "");
        if (name is not null && !NamePattern().IsMatch(name))
        {
            ctx.Add(root.Children[new YamlScalarNode("name")], "name",
                $"'{name}' is not a valid environment name (lowercase letters, digits and '-', starting with a letter, at most 63 characters)");
        }

        var baseSpec = ParseBase(ctx, root);
        var toolsets = ctx.StringList(root, "toolsets", "", ToolsetNamePattern(), "toolset name") ?? [];
        var packages = ctx.StringList(root, "packages", "", PackagePattern(), "Debian package name") ?? [];
        var kernels = ctx.StringList(root, "kernels", "", KernelPattern(), "kernel name") ?? [];
        var samples = ctx.OptionalScalar(root, "samples", "");
        var gpuText = ctx.OptionalScalar(root, "gpu", "");
        var gpu = GpuMode.None;
        if (gpuText is not null)
        {
            switch (gpuText)
            {
                case "none": gpu = GpuMode.None; break;
                case "optional": gpu = GpuMode.Optional; break;
                case "required": gpu = GpuMode.Required; break;
                default:
                    ctx.AddAt(root, "gpu", "gpu", $"'{gpuText}' is not a GPU mode (expected one of: none, optional, required)");
                    break;
            }
        }

        var env = ParseEnv(ctx, root);
        var files = ParseFiles(ctx, root, directory);
        var checks = ParseChecks(ctx, root);
        var pip = ParsePip(ctx, root);

        // Cross-field rules.
        ValidateToolsets(ctx, root, toolsets, gpu, catalog);
        ValidatePackagesUnique(ctx, packages);
        ValidateKernels(ctx, toolsets, kernels, catalog);
        ValidatePipHasPip(ctx, pip, toolsets, packages, catalog);
        if (samples is not null)
        {
            ValidateRelativePath(ctx, "samples", samples, directory, expectDirectory: true);
        }

        foreach (var (notebook, i) in checks.Notebooks.Select((n, i) => (n, i)))
        {
            var path = $"checks.notebooks[{i}]";
            if (!notebook.EndsWith(".ipynb", StringComparison.Ordinal))
            {
                ctx.AddPath(path, $"'{notebook}' is not a notebook (*.ipynb)");
            }
            else if (samples is null || !IsUnder(notebook, samples))
            {
                ctx.AddPath(path, $"'{notebook}' must lie in the samples folder ('samples: ...') so that it ships in the image");
            }
            else
            {
                ValidateRelativePath(ctx, path, notebook, directory, expectDirectory: false);
            }
        }

        if (ctx.Errors.Count > 0)
        {
            throw new SpecValidationException(ctx.Errors.OrderBy(e => e.Line).ThenBy(e => e.Column).ToList());
        }

        return new EnvironmentSpec
        {
            Name = name!,
            Description = ctx.OptionalScalar(root, "description", "") ?? "",
            Base = baseSpec,
            Toolsets = toolsets,
            Packages = packages,
            Samples = samples is null ? null : NormalizeRelative(samples),
            Files = files,
            Env = env,
            Kernels = kernels,
            Gpu = gpu,
            Checks = checks,
            Pip = pip,
            Directory = directory,
            FilePath = file,
            Locations = ctx.Locations,
            Digest = "sha256:" + Convert.ToHexStringLower(SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(text))),
        };
    }

    private static BaseSpec ParseBase(Context ctx, YamlMappingNode root)
    {
        if (!Context.TryGet(root, "base", out var node))
        {
            return new BaseSpec();
        }

        var map = ctx.Mapping(node, "base");
        if (map is null)
        {
            return new BaseSpec();
        }

        ctx.CheckKeys(map, "base", BaseKeys);
        var distribution = ctx.OptionalScalar(map, "distribution", "base") ?? "debian";
        if (distribution != "debian")
        {
            ctx.AddAt(map, "distribution", "base.distribution",
                $"'{distribution}' is not supported (supported: debian)");
        }

        var suite = ctx.OptionalScalar(map, "suite", "base") ?? "trixie";
        if (!SuitePattern().IsMatch(suite))
        {
            ctx.AddAt(map, "suite", "base.suite", $"'{suite}' is not a Debian suite name");
        }

        var components = ctx.StringList(map, "components", "base", ComponentPattern(), "component") ?? ["main"];
        for (var i = 0; i < components.Count; i++)
        {
            if (components[i].Length > 0 && !KnownComponents.Contains(components[i]))
            {
                ctx.AddPath($"base.components[{i}]",
                    $"unknown component '{components[i]}' (expected: {string.Join(", ", KnownComponents)})");
            }
        }

        if (!components.Contains("main"))
        {
            ctx.AddAt(map, "components", "base.components", "must include 'main'");
        }

        var mirror = ctx.OptionalScalar(map, "mirror", "base") ?? BaseSpec.DefaultMirror;
        if (!Uri.TryCreate(mirror, UriKind.Absolute, out var uri) || (uri.Scheme != "http" && uri.Scheme != "https"))
        {
            ctx.AddAt(map, "mirror", "base.mirror", $"'{mirror}' is not an http(s) URL");
        }

        return new BaseSpec
        {
            Distribution = distribution,
            Suite = suite,
            Components = components.Distinct(StringComparer.Ordinal).ToList(),
            Mirror = mirror.TrimEnd('/'),
        };
    }

    private static SortedDictionary<string, string> ParseEnv(Context ctx, YamlMappingNode root)
    {
        var env = new SortedDictionary<string, string>(StringComparer.Ordinal);
        if (!Context.TryGet(root, "env", out var node))
        {
            return env;
        }

        var map = ctx.Mapping(node, "env");
        if (map is null)
        {
            return env;
        }

        foreach (var (keyNode, valueNode) in map.Children)
        {
            if (keyNode is not YamlScalarNode { Value: { } key })
            {
                ctx.Add(keyNode, "env", "keys must be plain strings");
                continue;
            }

            var path = $"env.{key}";
            ctx.Locate(path, keyNode);
            if (!EnvNamePattern().IsMatch(key))
            {
                ctx.Add(keyNode, path, $"'{key}' is not a valid environment variable name");
                continue;
            }

            if (key.StartsWith("DSVM_", StringComparison.Ordinal) || key is "JUPYTER_TOKEN" or "HOME" or "USER")
            {
                ctx.Add(keyNode, path, $"'{key}' is reserved by OpenDSVM");
                continue;
            }

            var value = ctx.Scalar(valueNode, path);
            if (value is not null)
            {
                env[key] = value;
            }
        }

        return env;
    }

    private static List<FileSpec> ParseFiles(Context ctx, YamlMappingNode root, string directory)
    {
        var files = new List<FileSpec>();
        if (!Context.TryGet(root, "files", out var node))
        {
            return files;
        }

        if (node is not YamlSequenceNode seq)
        {
            ctx.Add(node, "files", "expected a list of {source, target}");
            return files;
        }

        for (var i = 0; i < seq.Children.Count; i++)
        {
            var path = $"files[{i}]";
            var map = ctx.Mapping(seq.Children[i], path);
            if (map is null)
            {
                continue;
            }

            ctx.CheckKeys(map, path, FileKeys);
            var source = ctx.RequiredScalar(map, "source", path);
            var target = ctx.RequiredScalar(map, "target", path);
            if (source is not null)
            {
                ValidateRelativePath(ctx, $"{path}.source", source, directory, expectDirectory: null);
            }

            if (target is not null && (!target.StartsWith('/') || target.Contains("..", StringComparison.Ordinal)))
            {
                ctx.AddAt(map, "target", $"{path}.target", $"'{target}' must be an absolute path inside the image without '..'");
            }

            if (source is not null && target is not null)
            {
                files.Add(new FileSpec(NormalizeRelative(source), target));
            }
        }

        return files;
    }

    private static CheckSpec ParseChecks(Context ctx, YamlMappingNode root)
    {
        if (!Context.TryGet(root, "checks", out var node))
        {
            return new CheckSpec();
        }

        var map = ctx.Mapping(node, "checks");
        if (map is null)
        {
            return new CheckSpec();
        }

        ctx.CheckKeys(map, "checks", CheckKeys);
        return new CheckSpec
        {
            Python = ctx.StringList(map, "python", "checks", PythonModulePattern(), "Python module name") ?? [],
            R = ctx.StringList(map, "r", "checks", RPackagePattern(), "R package name") ?? [],
            Notebooks = ctx.StringList(map, "notebooks", "checks", null, null) ?? [],
            Commands = ctx.StringList(map, "commands", "checks", null, null) ?? [],
        };
    }

    private static void ValidateToolsets(
        Context ctx, YamlMappingNode root, IReadOnlyList<string> toolsets, GpuMode gpu, ToolsetCatalog catalog)
    {
        var known = toolsets.Where(catalog.Contains).ToHashSet(StringComparer.Ordinal);
        var seen = new HashSet<string>(StringComparer.Ordinal);
        for (var i = 0; i < toolsets.Count; i++)
        {
            var name = toolsets[i];
            var path = $"toolsets[{i}]";
            if (name.Length == 0)
            {
                continue;
            }

            if (!seen.Add(name))
            {
                ctx.AddPath(path, $"toolset '{name}' is listed twice");
                continue;
            }

            if (!catalog.Contains(name))
            {
                var hint = Suggest(name, catalog.All.Select(t => t.Name));
                ctx.AddPath(path, $"unknown toolset '{name}'{hint} (known: {string.Join(", ", catalog.All.Select(t => t.Name).Where(n => n != ToolsetCatalog.CoreToolset))})");
                continue;
            }

            var toolset = catalog.Get(name);
            foreach (var required in toolset.Requires.Where(r => !known.Contains(r)))
            {
                ctx.AddPath(path, $"toolset '{name}' needs toolset '{required}'; add it to toolsets");
            }

            foreach (var conflict in toolset.Conflicts.Where(known.Contains))
            {
                if (string.CompareOrdinal(name, conflict) < 0)
                {
                    ctx.AddPath(path, $"toolset '{name}' cannot be combined with '{conflict}'");
                }
            }

            if (toolset.Gpu && gpu == GpuMode.None)
            {
                ctx.AddPath(path, $"toolset '{name}' carries GPU builds; set 'gpu: optional' or 'gpu: required'");
            }
        }

        _ = root;
    }

    private static void ValidatePackagesUnique(Context ctx, IReadOnlyList<string> packages)
    {
        var seen = new HashSet<string>(StringComparer.Ordinal);
        for (var i = 0; i < packages.Count; i++)
        {
            // Empty entries stand for invalid items, which are reported already.
            if (packages[i].Length > 0 && !seen.Add(packages[i]))
            {
                ctx.AddPath($"packages[{i}]", $"package '{packages[i]}' is listed twice");
            }
        }
    }

    private static void ValidateKernels(Context ctx, IReadOnlyList<string> toolsets, IReadOnlyList<string> kernels, ToolsetCatalog catalog)
    {
        var provided = toolsets.Where(catalog.Contains).SelectMany(t => catalog.Get(t).Kernels).ToHashSet(StringComparer.Ordinal);
        for (var i = 0; i < kernels.Count; i++)
        {
            if (kernels[i].Length > 0 && !provided.Contains(kernels[i]))
            {
                var providers = catalog.All.Where(t => t.Kernels.Contains(kernels[i])).Select(t => $"'{t.Name}'").ToList();
                var hint = providers.Count > 0 ? $"; add toolset {string.Join(" or ", providers)}" : "";
                ctx.AddPath($"kernels[{i}]", $"no selected toolset provides kernel '{kernels[i]}'{hint}");
            }
        }
    }

    private static void ValidateRelativePath(Context ctx, string path, string value, string directory, bool? expectDirectory)
    {
        if (Path.IsPathRooted(value) || value.Split('/', '\\').Contains(".."))
        {
            ctx.AddPath(path, $"'{value}' must be a path inside the environment folder (relative, without '..')");
            return;
        }

        var full = Path.Combine(directory, value);
        var isDir = Directory.Exists(full);
        var isFile = File.Exists(full);
        if (!isDir && !isFile)
        {
            ctx.AddPath(path, $"'{value}' does not exist in {directory}");
        }
        else if (expectDirectory == true && !isDir)
        {
            ctx.AddPath(path, $"'{value}' is a file; expected a folder");
        }
        else if (expectDirectory == false && !isFile)
        {
            ctx.AddPath(path, $"'{value}' is a folder; expected a file");
        }
    }

    private static bool IsUnder(string path, string folder)
    {
        var f = NormalizeRelative(folder) + "/";
        return NormalizeRelative(path).StartsWith(f, StringComparison.Ordinal);
    }

    internal static string NormalizeRelative(string path)
    {
        var parts = path.Replace('\\', '/').Split('/', StringSplitOptions.RemoveEmptyEntries).Where(p => p != ".");
        return string.Join('/', parts);
    }

    /// <summary>" (did you mean 'x'?)" when a known name is within two edits.</summary>
    public static string Suggest(string value, IEnumerable<string> known)
    {
        // Bounded work: long values and long lists of names (an attacker's file) get no suggestion.
        if (value.Length > 64)
        {
            return "";
        }

        var best = known.Take(256).Where(k => Math.Abs(k.Length - value.Length) <= 2)
            .Select(k => (k, d: Distance(value, k))).Where(x => x.d <= 2).OrderBy(x => x.d).FirstOrDefault();
        return best.k is null ? "" : $" (did you mean '{best.k}'?)";
    }

    private static int Distance(string a, string b)
    {
        var d = new int[a.Length + 1, b.Length + 1];
        for (var i = 0; i <= a.Length; i++) d[i, 0] = i;
        for (var j = 0; j <= b.Length; j++) d[0, j] = j;
        for (var i = 1; i <= a.Length; i++)
        {
            for (var j = 1; j <= b.Length; j++)
            {
                var cost = a[i - 1] == b[j - 1] ? 0 : 1;
                d[i, j] = Math.Min(Math.Min(d[i - 1, j] + 1, d[i, j - 1] + 1), d[i - 1, j - 1] + cost);
            }
        }

        return d[a.Length, b.Length];
    }

    [GeneratedRegex("^[a-z][a-z0-9-]{0,62}\\z")]
    public static partial Regex NamePattern();

    [GeneratedRegex("^[a-z][a-z0-9-]*\\z")]
    private static partial Regex ToolsetNamePattern();

    [GeneratedRegex(@"^[a-z0-9][a-z0-9+.-]+\z")]
    internal static partial Regex PackagePattern();

    [GeneratedRegex(@"^[A-Za-z0-9_.-]+\z")]
    private static partial Regex KernelPattern();

    [GeneratedRegex("^[a-z][a-z-]*\\z")]
    private static partial Regex SuitePattern();

    [GeneratedRegex("^[a-z][a-z-]*\\z")]
    private static partial Regex ComponentPattern();

    [GeneratedRegex("^[A-Za-z_][A-Za-z0-9_]*\\z")]
    private static partial Regex EnvNamePattern();

    [GeneratedRegex(@"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*\z")]
    private static partial Regex PythonModulePattern();

    [GeneratedRegex(@"^[A-Za-z][A-Za-z0-9.]*\z")]
    private static partial Regex RPackagePattern();
}
