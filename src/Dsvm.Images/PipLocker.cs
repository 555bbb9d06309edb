using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Dsvm.Core;
using Dsvm.Core.Locks;
using Dsvm.Core.Specs;

namespace Dsvm.Images;

/// <summary>
/// Pins the spec's <c>pip:</c> requirements where the image's Python is: it builds the image's Debian layers
/// (tagged <c>dsvm-lock/&lt;env&gt;:&lt;tag&gt;</c>; the real build reuses them from the layer cache) and runs
/// <c>pip install --dry-run --report</c> in a container of it. Distributions the Debian packages already provide
/// are left out; every other one is pinned with its version and the sha256 of the file pip chose.
/// The container gets the host's network only when the index is on loopback (a local mirror or the tests' index).
/// </summary>
public sealed partial class PipLocker(DockerCli docker, ToolsetCatalog catalog, string? packageCache = null)
{
    public const string LockRepository = "dsvm-lock/";

    public async Task<PipLock> LockAsync(EnvironmentSpec spec, EnvironmentLock aptLock, Action<string>? log, CancellationToken ct)
    {
        var pip = spec.Pip ?? throw new InvalidOperationException("the spec has no pip section");
        var rendered = DockerfileRenderer.Render(spec, aptLock with { Pip = null }, catalog);
        var image = $"{LockRepository}{spec.Name}:{rendered.Tag}";
        if (!await docker.ImageExistsAsync(image, ct))
        {
            log?.Invoke($"building the Debian layers of '{spec.Name}' to resolve its pip requirements in the image's Python");
            using var tar = new MemoryStream();
            rendered.Context.WriteTar(tar);
            tar.Position = 0;
            var tail = new Queue<string>();
            // Through the package cache, as a build: its arguments are part of how the engine records each step, so
            // without them these layers would not be the build's (nor the image's already built from the same lock).
            await using var cache = PackageCache.StartFor(docker.Endpoint, packageCache, [new Uri(aptLock.Base.Mirror)]);
            var exit = await docker.StreamAsync(["build", "--tag", image, "--rm", "--force-rm", .. cache?.BuildArguments ?? [], "-"], line =>
            {
                tail.Enqueue(line);
                if (tail.Count > 200)
                {
                    tail.Dequeue();
                }
            }, ct, tar);
            if (exit != 0)
            {
                throw new LockException($"building the Debian layers (to resolve pip requirements) failed: {ImageBuilder.Explain(tail.ToList(), "", spec)}");
            }
        }

        log?.Invoke($"resolving {pip.Requirements.Count} pip requirements against {pip.Index}");
        var args = new List<string> { "run", "--rm" };
        args.AddRange(NetworkArgs(pip.Index));
        args.AddRange(["-e", "PIP_CONFIG_FILE=/dev/null", "--entrypoint", "python3", image,
            "-m", "pip", "install", "--dry-run", "--quiet", "--report", "-", "--index-url", pip.Index]);
        args.AddRange(PipSpec.TrustedHostArgs(pip.Index));
        args.AddRange(CommonOptions);
        args.Add("--");
        args.AddRange(pip.Requirements);
        var r = await docker.RunAsync(args, ct);
        if (!r.Ok)
        {
            throw ExplainLockFailure(spec, r.Stderr.Length > 0 ? r.Stderr : r.Stdout);
        }

        return new PipLock { Index = pip.Index, Packages = ParseReport(r.Stdout, spec) };
    }

    /// <summary>Options of both the lock's dry run and the build's install: wheels only, no cache, no prompts.</summary>
    internal static readonly string[] CommonOptions =
        ["--only-binary=:all:", "--no-cache-dir", "--break-system-packages", "--disable-pip-version-check", "--no-input", "--retries", "1", "--timeout", "60"];

    /// <summary><c>--network host</c> for an index on loopback (reachable from a container only that way); nothing otherwise.</summary>
    public static IReadOnlyList<string> NetworkArgs(string? index) =>
        index is not null && PipSpec.IsLoopback(index) ? ["--network", "host"] : [];

    /// <summary>Reads pip's installation report (https://pip.pypa.io/en/stable/reference/installation-report/).</summary>
    internal static List<LockedPipPackage> ParseReport(string json, EnvironmentSpec spec)
    {
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(json);
        }
        catch (JsonException ex)
        {
            throw new LockException($"{spec.FilePath}: pip's report is not JSON ({ex.Message})");
        }

        using (doc)
        {
            var packages = new List<LockedPipPackage>();
            if (!doc.RootElement.TryGetProperty("install", out var install) || install.ValueKind != JsonValueKind.Array)
            {
                throw new LockException($"{spec.FilePath}: pip's report has no 'install' list");
            }

            foreach (var item in install.EnumerateArray())
            {
                var name = Str(item, "metadata", "name");
                var version = Str(item, "metadata", "version");
                var sha = Str(item, "download_info", "archive_info", "hashes", "sha256");
                if (sha is null && Str(item, "download_info", "archive_info", "hash") is { } h && h.StartsWith("sha256=", StringComparison.Ordinal))
                {
                    sha = h["sha256=".Length..];
                }

                var line = $"{(name is null ? "?" : PipSpec.Normalize(name))}=={version} sha256:{sha?.ToLowerInvariant()}";
                try
                {
                    packages.Add(LockedPipPackage.Parse(line));
                }
                catch (FormatException)
                {
                    throw new LockException($"{spec.FilePath}: pip chose {name ?? "a distribution"} {version} without a sha256 of a downloaded file (a local folder or VCS checkout?); only index files can be pinned");
                }
            }

            return packages.OrderBy(p => p.Name, StringComparer.Ordinal).ToList();
        }

        static string? Str(JsonElement e, params string[] path)
        {
            foreach (var key in path)
            {
                if (e.ValueKind != JsonValueKind.Object || !e.TryGetProperty(key, out e))
                {
                    return null;
                }
            }

            return e.ValueKind == JsonValueKind.String ? e.GetString() : null;
        }
    }

    /// <summary>pip's failure as a located spec error when it names a requirement, else a lock error with pip's words.</summary>
    internal static DsvmException ExplainLockFailure(EnvironmentSpec spec, string output)
    {
        var pip = spec.Pip!;
        var lines = output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        var missing = lines.Select(l => NoMatch().Match(l)).FirstOrDefault(m => m.Success);
        if (missing is not null)
        {
            var requirement = missing.Groups[1].Value;
            var versions = lines.Select(l => FromVersions().Match(l)).FirstOrDefault(m => m.Success)?.Groups[1].Value;
            var has = versions is null ? "" : versions == "none" ? " (it has no version of it)" : $" (it has: {versions})";
            var text = $"the index {pip.Index} has no wheel for this image that satisfies '{requirement}'{has}";
            var name = PipSpec.NameOf(requirement);
            for (var i = 0; i < pip.Requirements.Count; i++)
            {
                if (PipSpec.NameOf(pip.Requirements[i]) == name)
                {
                    return new SpecValidationException([spec.ErrorAt($"pip.requirements[{i}]", text)]);
                }
            }

            return new SpecValidationException([spec.ErrorAt("pip.requirements", $"a dependency: {text}")]);
        }

        return new LockException($"{spec.FilePath}: pip could not resolve the pip requirements against {pip.Index}:\n  "
            + string.Join("\n  ", lines.Where(l => l.StartsWith("ERROR", StringComparison.Ordinal) || l.Contains("Error", StringComparison.Ordinal)).DefaultIfEmpty(lines.LastOrDefault() ?? "").TakeLast(6)));
    }

    /// <summary>A failed pip install in a build, as one clear line naming what the index no longer serves; null if not pip's.</summary>
    internal static string? ExplainBuildFailure(IReadOnlyList<string> tail, EnvironmentSpec spec)
    {
        var lockPath = Path.Combine(spec.Directory, EnvironmentLock.FileName);
        var index = spec.Pip?.Index ?? "the pip index";
        var missing = tail.Select(l => NoMatch().Match(l)).Where(m => m.Success).Select(m => m.Groups[1].Value).Distinct().ToList();
        if (missing.Count > 0)
        {
            return $"the index {index} no longer has {string.Join(", ", missing)} (pinned in {lockPath}); "
                + $"run `dsvm env lock {spec.Directory}` to resolve current versions";
        }

        var start = tail.ToList().FindIndex(l => l.Contains("DO NOT MATCH THE HASHES", StringComparison.Ordinal));
        if (start >= 0)
        {
            var changed = tail.Skip(start).Select(l => HashLine().Match(l)).Where(m => m.Success).Select(m => m.Groups[1].Value).Distinct().ToList();
            return $"the index {index} serves a different file for {(changed.Count > 0 ? string.Join(", ", changed) : "a pinned distribution")} than the one pinned in {lockPath} (sha256 differs); "
                + $"if that is expected, run `dsvm env lock {spec.Directory}` again";
        }

        return null;
    }

    [GeneratedRegex(@"No matching distribution found for (\S+)")]
    private static partial Regex NoMatch();

    [GeneratedRegex(@"\(from versions: ([^)]*)\)")]
    private static partial Regex FromVersions();

    [GeneratedRegex(@"^\s*([A-Za-z0-9][A-Za-z0-9._-]*==\S+) from ")]
    private static partial Regex HashLine();
}

/// <summary>The build's pip layer: exactly the lock's files, by hash, without dependency resolution.</summary>
public static class PipLayer
{
    public const string RequirementsPath = "dsvm/lock/pip.txt";

    public static void AddFiles(BuildContext ctx, EnvironmentLock lockFile)
    {
        if (lockFile.Pip is { Packages.Count: > 0 } pip)
        {
            ctx.Add(RequirementsPath, pip.RequirementsFile());
        }
    }

    public static void Append(StringBuilder d, EnvironmentLock lockFile)
    {
        if (lockFile.Pip is not { Packages.Count: > 0 })
        {
            return;
        }

        // Root installs into /usr/local/lib/python3*/dist-packages, Debian's place for packages it does not manage.
        d.Append($"COPY {RequirementsPath} /opt/dsvm/lock/pip.txt\n");
        d.Append("RUN PIP_CONFIG_FILE=/dev/null python3 -m pip install --no-deps --require-hashes ")
            .Append(string.Join(' ', PipLocker.CommonOptions)).Append(" -r /opt/dsvm/lock/pip.txt\n");
    }
}
