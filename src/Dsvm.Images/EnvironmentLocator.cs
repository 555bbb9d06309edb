using Dsvm.Core;
using Dsvm.Core.Specs;

namespace Dsvm.Images;

/// <summary>
/// Finds an environment by folder, spec file or curated name. Curated names are looked up in
/// <c>DSVM_ENVIRONMENTS</c> (':'-separated folders), <c>./environments</c> and the folder shipped with the tool.
/// </summary>
public static class EnvironmentLocator
{
    public const string Default = "datascience";

    public static IReadOnlyList<string> Roots()
    {
        var roots = new List<string>();
        if (Environment.GetEnvironmentVariable("DSVM_ENVIRONMENTS") is { Length: > 0 } env)
        {
            roots.AddRange(env.Split(':', StringSplitOptions.RemoveEmptyEntries));
        }

        roots.Add(Path.Combine(Directory.GetCurrentDirectory(), "environments"));
        roots.Add(Path.Combine(AppContext.BaseDirectory, "environments"));
        return roots.Where(Directory.Exists).Select(Path.GetFullPath).Distinct().ToList();
    }

    /// <summary>The spec's folder, or the spec file itself when a file was named.</summary>
    public static string Resolve(string nameOrPath)
    {
        if (Directory.Exists(nameOrPath) || File.Exists(nameOrPath))
        {
            return Path.GetFullPath(nameOrPath);
        }

        if (SpecLoader.NamePattern().IsMatch(nameOrPath))
        {
            foreach (var root in Roots())
            {
                var dir = Path.Combine(root, nameOrPath);
                if (File.Exists(Path.Combine(dir, SpecLoader.FileName)))
                {
                    return dir;
                }
            }
        }

        var known = Curated().Select(c => c.Name).ToList();
        throw new NotFoundException(
            $"unknown environment '{nameOrPath}': not a folder, and not a curated environment"
            + (known.Count > 0 ? $" (known: {string.Join(", ", known)})" : ""));
    }

    /// <summary>Curated environments found in the roots (first root wins for a name).</summary>
    public static IReadOnlyList<(string Name, string Directory)> Curated() =>
        Roots().SelectMany(r => Directory.EnumerateDirectories(r))
            .Where(d => File.Exists(Path.Combine(d, SpecLoader.FileName)))
            .Select(d => (Name: Path.GetFileName(d), Directory: d))
            .DistinctBy(x => x.Name)
            .OrderBy(x => x.Name, StringComparer.Ordinal)
            .ToList();

    /// <summary>An image reference for an argument that is either an image or an environment name.</summary>
    public static string ImageFor(string nameOrImage) =>
        nameOrImage.Contains(':', StringComparison.Ordinal) || nameOrImage.Contains('/', StringComparison.Ordinal)
            ? nameOrImage
            : $"dsvm/{nameOrImage}:latest";
}
