using System.Text.RegularExpressions;
using Dsvm.Core;
using Dsvm.Core.Locks;
using Dsvm.Core.Specs;

namespace Dsvm.Images;

/// <summary>
/// Resolves a spec to an <see cref="EnvironmentLock"/> by asking apt itself, inside a container of the base image:
/// it refreshes the package lists, checks that every named package exists, and simulates the installs
/// (<c>apt-get -s</c>) to get the full dependency closure at exact versions.
/// </summary>
/// <param name="packageCache">The builds' package cache folder (null: none), which the pip lock's build of the Debian
/// layers uses as a build does, so that both make the same layers.</param>
public sealed partial class LockResolver(DockerCli docker, BaseImageProvider bases, ToolsetCatalog catalog, string? packageCache = null)
{
    internal const string Script = """
        set -eu
        apt-get update -q >/dev/null 2>/tmp/update.err || { echo '@@update-failed'; cat /tmp/update.err; exit 0; }
        echo '@@arch'; dpkg --print-architecture
        echo '@@base'; dpkg-query -W -f='${db:Status-Abbrev} ${Package}=${Version}\n' | awk '$1 == "ii" { print $2 }'
        echo '@@names'; apt-cache pkgnames
        echo '@@sim-toolsets'; apt-get -s -y -q --no-install-recommends install $DSVM_TOOLSETS 2>&1 || true
        echo '@@sim-all'; apt-get -s -y -q --no-install-recommends install $DSVM_TOOLSETS $DSVM_EXTRA 2>&1 || true
        echo '@@end'
        """;

    /// <summary>
    /// What the Debian resolution of <paramref name="spec"/> depends on, as a digest: the base (distribution, suite,
    /// components, mirror), the toolsets' packages (as this dsvm's catalog has them) and the spec's own packages.
    /// </summary>
    public static string AptInputs(EnvironmentSpec spec, ToolsetCatalog catalog)
    {
        var text = new System.Text.StringBuilder()
            .Append(spec.Base.Distribution).Append('\n').Append(spec.Base.Suite).Append('\n')
            .AppendJoin(' ', spec.Base.Components).Append('\n').Append(spec.Base.Mirror).Append('\n')
            .AppendJoin(' ', ToolsetPackages(spec, catalog)).Append('\n')
            .AppendJoin(' ', spec.Packages).Append('\n');
        return "sha256:" + Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(text.ToString())));
    }

    private static List<string> ToolsetPackages(EnvironmentSpec spec, ToolsetCatalog catalog) =>
        catalog.Resolve(spec).SelectMany(t => t.Packages).Distinct(StringComparer.Ordinal).ToList();

    /// <summary>
    /// A lock for a spec whose Debian inputs are those of <paramref name="previous"/> (<see cref="AptInputs"/>): its
    /// Debian pins kept as they are, its pip section resolved again (or dropped). No package list is fetched. The pip
    /// requirements are resolved in an image of those pins on <paramref name="buildBase"/>, the base image this machine
    /// has for the lock's base (what a build uses too).
    /// </summary>
    public async Task<EnvironmentLock> RelockKeepingDebianPinsAsync(
        EnvironmentSpec spec, EnvironmentLock previous, BaseLock buildBase, Action<string>? log, CancellationToken ct)
    {
        var aptLock = previous with { Environment = spec.Name, SpecDigest = spec.Digest, Pip = null };
        return spec.Pip is null ? aptLock : aptLock with { Pip = await new PipLocker(docker, catalog, packageCache).LockAsync(spec, aptLock with { Base = buildBase }, log, ct) };
    }

    public async Task<EnvironmentLock> ResolveAsync(EnvironmentSpec spec, Action<string>? log, CancellationToken ct)
    {
        var baseImage = await bases.EnsureAsync(spec.Base, null, log, ct);
        var toolsetPackages = ToolsetPackages(spec, catalog);
        log?.Invoke($"resolving {toolsetPackages.Count + spec.Packages.Count} packages against {spec.Base.Suite} ({string.Join(",", spec.Base.Components)})");
        var r = await docker.RunAsync(
        [
            "run", "--rm",
            "-e", "DSVM_TOOLSETS=" + string.Join(' ', toolsetPackages),
            "-e", "DSVM_EXTRA=" + string.Join(' ', spec.Packages),
            baseImage.Image, "bash", "-c", Script,
        ], ct);
        if (!r.Ok)
        {
            throw new LockException($"resolving packages failed: {r.Tail()}");
        }

        var sections = Sections(r.Stdout);
        if (sections.TryGetValue("update-failed", out var updateErr))
        {
            throw new LockException($"apt-get update failed in the base image (is {spec.Base.Mirror} reachable?): {string.Join(' ', updateErr.TakeLast(3))}");
        }

        if (!sections.ContainsKey("end"))
        {
            throw new LockException($"resolving packages stopped early: {r.Tail()}");
        }

        var names = sections["names"].ToHashSet(StringComparer.Ordinal);
        var errors = new List<SpecError>();
        for (var i = 0; i < spec.Packages.Count; i++)
        {
            if (!names.Contains(spec.Packages[i]))
            {
                var hint = SpecLoader.Suggest(spec.Packages[i], names.Where(n => n[0] == spec.Packages[i][0]));
                errors.Add(spec.ErrorAt($"packages[{i}]",
                    $"unknown package '{spec.Packages[i]}' in {spec.Base.Distribution}/{spec.Base.Suite} ({string.Join(", ", spec.Base.Components)}){hint}"));
            }
        }

        foreach (var missing in toolsetPackages.Where(p => !names.Contains(p)))
        {
            var owner = catalog.Resolve(spec).First(t => t.Packages.Contains(missing)).Name;
            var index = spec.Toolsets.ToList().IndexOf(owner);
            errors.Add(spec.ErrorAt(index >= 0 ? $"toolsets[{index}]" : "toolsets",
                $"toolset '{owner}' needs package '{missing}', which {spec.Base.Suite} ({string.Join(", ", spec.Base.Components)}) does not have"));
        }

        if (errors.Count > 0)
        {
            throw new SpecValidationException(errors);
        }

        var toolsets = ParseSimulation(sections["sim-toolsets"], spec, "toolsets");
        var all = ParseSimulation(sections["sim-all"], spec, "packages");
        var toolsetNames = toolsets.Select(p => p.Name).ToHashSet(StringComparer.Ordinal);
        var aptLock = new EnvironmentLock
        {
            Environment = spec.Name,
            SpecDigest = spec.Digest,
            AptInputs = AptInputs(spec, catalog),
            Base = new BaseLock
            {
                Distribution = spec.Base.Distribution,
                Suite = spec.Base.Suite,
                Components = spec.Base.Components,
                Mirror = spec.Base.Mirror,
                Architecture = sections["arch"].FirstOrDefault() ?? "amd64",
                RootfsDigest = baseImage.Digest,
            },
            BasePackages = sections["base"].Select(LockedPackage.Parse).ToList(),
            ToolsetPackages = toolsets,
            ExtraPackages = all.Where(p => !toolsetNames.Contains(p.Name)).ToList(),
        };
        return spec.Pip is null ? aptLock : aptLock with { Pip = await new PipLocker(docker, catalog, packageCache).LockAsync(spec, aptLock, log, ct) };
    }

    /// <summary>Splits the script output at its <c>@@name</c> markers.</summary>
    internal static Dictionary<string, List<string>> Sections(string output)
    {
        var sections = new Dictionary<string, List<string>>(StringComparer.Ordinal);
        List<string>? current = null;
        foreach (var raw in output.Split('\n'))
        {
            var line = raw.TrimEnd('\r');
            if (line.StartsWith("@@", StringComparison.Ordinal))
            {
                current = sections[line[2..]] = [];
            }
            else if (current is not null && line.Length > 0)
            {
                current.Add(line);
            }
        }

        return sections;
    }

    /// <summary>Reads <c>Inst name [old] (version release [arch])</c> lines; apt's errors become a clear message.</summary>
    internal static List<LockedPackage> ParseSimulation(IReadOnlyList<string> lines, EnvironmentSpec spec, string what)
    {
        var errors = lines.Where(l => l.StartsWith("E: ", StringComparison.Ordinal)).ToList();
        if (errors.Count > 0)
        {
            var context = lines.Where(l => !l.StartsWith("Inst ", StringComparison.Ordinal) && !l.StartsWith("Conf ", StringComparison.Ordinal)
                                           && !l.StartsWith("Reading ", StringComparison.Ordinal) && !l.StartsWith("Building ", StringComparison.Ordinal))
                .TakeLast(12);
            throw new LockException(
                $"{spec.FilePath}: apt cannot install the {what} of '{spec.Name}' together:\n  " + string.Join("\n  ", context));
        }

        return lines.Select(l => InstLine().Match(l)).Where(m => m.Success)
            .Select(m => new LockedPackage(m.Groups[1].Value.Split(':')[0], m.Groups[2].Value))
            .DistinctBy(p => p.Name)
            .OrderBy(p => p.Name, StringComparer.Ordinal)
            .ToList();
    }

    [GeneratedRegex(@"^Inst (\S+) (?:\[[^\]]*\] )?\((\S+) ")]
    private static partial Regex InstLine();
}
