using System.Text.RegularExpressions;
using YamlDotNet.RepresentationModel;

namespace Dsvm.Core.Specs;

/// <summary>
/// The spec's <c>pip:</c> section: Python distributions Debian lacks, from one package index (PyPI unless set).
/// <c>dsvm env lock</c> pins every distribution (dependencies included) with its version and sha256; the build
/// installs exactly that with <c>--require-hashes --no-deps</c> (docs/environments.md).
/// </summary>
public sealed partial record PipSpec
{
    public const string DefaultIndex = "https://pypi.org/simple";

    /// <summary>A PEP 503 "simple" index URL, without credentials.</summary>
    public string Index { get; init; } = DefaultIndex;

    /// <summary>Requirements: a name, optional extras and version specifiers (no URLs, markers or pip options).</summary>
    public IReadOnlyList<string> Requirements { get; init; } = [];

    /// <summary>PEP 503 normalised name: lowercase, runs of '-', '_' and '.' become one '-'.</summary>
    public static string Normalize(string name) => Separators().Replace(name, "-").ToLowerInvariant();

    /// <summary>The distribution name of a requirement that <see cref="RequirementPattern"/> accepted.</summary>
    public static string NameOf(string requirement) => Normalize(RequirementName().Match(requirement).Value);

    /// <summary>True when the index is on this machine's loopback, so that a container reaches it only with the host's network.</summary>
    public static bool IsLoopback(string index) =>
        Uri.TryCreate(index, UriKind.Absolute, out var uri)
        && (uri.IsLoopback || (System.Net.IPAddress.TryParse(uri.Host.Trim('[', ']'), out var ip) && System.Net.IPAddress.IsLoopback(ip)));

    /// <summary>
    /// pip ignores a plain-http index unless it is on loopback or named trusted; the spec's author chose it, and the
    /// lock's hashes still pin every file, so it is trusted.
    /// </summary>
    public static IReadOnlyList<string> TrustedHostArgs(string index) =>
        Uri.TryCreate(index, UriKind.Absolute, out var uri) && uri.Scheme == "http" && !IsLoopback(index)
            ? ["--trusted-host", uri.IsDefaultPort ? uri.Host : $"{uri.Host}:{uri.Port}"]
            : [];

    [GeneratedRegex("[-_.]+")]
    private static partial Regex Separators();

    [GeneratedRegex("^[A-Za-z0-9][A-Za-z0-9._-]*")]
    private static partial Regex RequirementName();

    /// <summary>PEP 508 without URLs and markers: <c>name[extra,...] op version, op version</c>.</summary>
    [GeneratedRegex(@"^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,98}[A-Za-z0-9])?(?:\[[A-Za-z0-9._-]+(?:,[A-Za-z0-9._-]+)*\])?(?:\s*(?:===|~=|==|!=|<=|>=|<|>)\s*[A-Za-z0-9.*+!_-]{1,64}(?:\s*,\s*(?:===|~=|==|!=|<=|>=|<|>)\s*[A-Za-z0-9.*+!_-]{1,64}){0,15})?\z")]
    public static partial Regex RequirementPattern();
}

public static partial class SpecLoader
{
    private static readonly string[] PipKeys = ["index", "requirements"];

    private static PipSpec? ParsePip(Context ctx, YamlMappingNode root)
    {
        if (!Context.TryGet(root, "pip", out var node))
        {
            return null;
        }

        var map = ctx.Mapping(node, "pip");
        if (map is null)
        {
            return null;
        }

        ctx.CheckKeys(map, "pip", PipKeys);
        var index = ctx.OptionalScalar(map, "index", "pip") ?? PipSpec.DefaultIndex;
        if (!Uri.TryCreate(index, UriKind.Absolute, out var uri) || (uri.Scheme != "http" && uri.Scheme != "https")
            || index.Any(c => char.IsWhiteSpace(c) || char.IsControl(c)))
        {
            ctx.AddAt(map, "index", "pip.index", $"'{index}' is not an http(s) URL");
        }
        else if (uri.UserInfo.Length > 0)
        {
            // The index URL is written into the lock and the image: credentials would leak into both.
            ctx.AddAt(map, "index", "pip.index",
                "credentials do not belong in environment.yaml (they would end up in the lock and the image); private indexes with credentials are not supported");
        }

        if (!Context.TryGet(map, "requirements", out _))
        {
            ctx.Add(map, "pip.requirements", "required key 'requirements' is missing");
            return null;
        }

        var requirements = ctx.StringList(map, "requirements", "pip", PipSpec.RequirementPattern(), "pip requirement (name[extras] and version specifiers such as 'polars>=1.0,<2'; URLs, markers and options are not supported)");
        if (requirements is null)
        {
            return null;
        }

        var seen = new HashSet<string>(StringComparer.Ordinal);
        for (var i = 0; i < requirements.Count; i++)
        {
            if (PipSpec.RequirementPattern().IsMatch(requirements[i]) && !seen.Add(PipSpec.NameOf(requirements[i])))
            {
                ctx.AddPath($"pip.requirements[{i}]", $"'{PipSpec.NameOf(requirements[i])}' is listed twice");
            }
        }

        if (requirements.Count == 0)
        {
            ctx.AddAt(map, "requirements", "pip.requirements", "list at least one requirement");
        }

        return new PipSpec { Index = index, Requirements = requirements };
    }

    /// <summary>pip runs inside the image: the image must have it.</summary>
    private static void ValidatePipHasPip(Context ctx, PipSpec? pip, IReadOnlyList<string> toolsets, IReadOnlyList<string> packages, ToolsetCatalog catalog)
    {
        if (pip is not null && !packages.Contains(PipPackage)
            && !toolsets.Where(catalog.Contains).Any(t => catalog.Get(t).Packages.Contains(PipPackage)))
        {
            ctx.AddPath("pip", $"pip runs inside the image, which then needs the Debian package {PipPackage}: add toolset 'python' or '{PipPackage}' to packages");
        }
    }

    private const string PipPackage = "python3-pip";
}
