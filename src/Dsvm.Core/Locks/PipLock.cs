using System.Text;
using System.Text.RegularExpressions;
using Dsvm.Core.Specs;
using YamlDotNet.RepresentationModel;

namespace Dsvm.Core.Locks;

/// <summary>One Python distribution pinned to an exact version and the sha256 of the file pip chose for the image.</summary>
public sealed partial record LockedPipPackage(string Name, string Version, string Sha256)
{
    /// <summary>The lock's form: <c>name==version sha256:hex</c>.</summary>
    public override string ToString() => $"{Name}=={Version} sha256:{Sha256}";

    /// <summary>The line of a pip requirements file that installs exactly this file.</summary>
    public string RequirementLine => $"{Name}=={Version} --hash=sha256:{Sha256}";

    public static LockedPipPackage Parse(string text)
    {
        var m = LinePattern().Match(text);
        return m.Success
            ? new LockedPipPackage(m.Groups[1].Value, m.Groups[2].Value, m.Groups[3].Value)
            : throw new FormatException($"'{text}' is not 'name==version sha256:<64 hex digits>'");
    }

    [GeneratedRegex(@"^([a-z0-9](?:[a-z0-9-]{0,98}[a-z0-9])?)==([A-Za-z0-9.!+_-]{1,64}) sha256:([0-9a-f]{64})\z")]
    private static partial Regex LinePattern();
}

/// <summary>The <c>pip:</c> part of <c>environment.lock</c>: the index and every distribution it installs.</summary>
public sealed record PipLock
{
    /// <summary>The index the distributions come from (the spec's, which carries no credentials).</summary>
    public required string Index { get; init; }

    /// <summary>Sorted by name; dependencies included, those the Debian packages already provide left out.</summary>
    public required IReadOnlyList<LockedPipPackage> Packages { get; init; }

    /// <summary>The requirements file the build installs with <c>--require-hashes --no-deps</c>.</summary>
    public string RequirementsFile() =>
        "# generated from environment.lock by OpenDSVM\n--index-url " + Index + "\n"
        + (PipSpec.TrustedHostArgs(Index) is [_, var host] ? $"--trusted-host {host}\n" : "")
        + string.Concat(Packages.Select(p => p.RequirementLine + "\n"));

    internal void Append(StringBuilder sb)
    {
        sb.Append("pip:\n");
        sb.Append("  index: \"").Append(Index).Append("\"\n");
        sb.Append("  packages:");
        if (Packages.Count == 0)
        {
            sb.Append(" []\n");
            return;
        }

        sb.Append('\n');
        foreach (var p in Packages.OrderBy(p => p.Name, StringComparer.Ordinal))
        {
            sb.Append("    - \"").Append(p).Append("\"\n");
        }
    }

    /// <summary>Reads the <c>pip</c> mapping of a lock; every fault names its line, column and key.</summary>
    internal static PipLock Parse(YamlNode node, string file)
    {
        static SpecValidationException Error(string file, YamlNode at, string path, string message) =>
            new([new SpecError(file, (int)at.Start.Line, (int)at.Start.Column, path, message + "; regenerate the lock with `dsvm env lock`")]);

        if (node is not YamlMappingNode map)
        {
            throw Error(file, node, "pip", "expected a mapping");
        }

        if (!map.Children.TryGetValue(new YamlScalarNode("index"), out var indexNode) || indexNode is not YamlScalarNode { Value: { Length: > 0 } index })
        {
            throw Error(file, map, "pip.index", "missing or not a single value");
        }

        if (!Uri.TryCreate(index, UriKind.Absolute, out var uri) || (uri.Scheme != "http" && uri.Scheme != "https") || uri.UserInfo.Length > 0
            || index.Any(c => char.IsWhiteSpace(c) || char.IsControl(c)))
        {
            throw Error(file, indexNode, "pip.index", $"'{index}' is not an http(s) URL without credentials");
        }

        if (!map.Children.TryGetValue(new YamlScalarNode("packages"), out var listNode) || listNode is not YamlSequenceNode list)
        {
            throw Error(file, map, "pip.packages", "missing or not a list");
        }

        var packages = new List<LockedPipPackage>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        for (var i = 0; i < list.Children.Count; i++)
        {
            var item = list.Children[i];
            var path = $"pip.packages[{i}]";
            try
            {
                var p = LockedPipPackage.Parse(item is YamlScalarNode { Value: { } v } ? v : "");
                if (!seen.Add(p.Name))
                {
                    throw Error(file, item, path, $"'{p.Name}' is pinned twice");
                }

                packages.Add(p);
            }
            catch (FormatException ex)
            {
                throw Error(file, item, path, ex.Message);
            }
        }

        return new PipLock { Index = index, Packages = packages };
    }
}
