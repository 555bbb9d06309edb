using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;
using Dsvm.Core;
using Dsvm.Core.Locks;
using Dsvm.Core.Specs;

namespace Dsvm.Images;

/// <summary>Options of one build.</summary>
public sealed record BuildOptions
{
    /// <summary>Fail instead of (re)writing a missing or stale lock (like <c>npm ci</c>).</summary>
    public bool Frozen { get; init; }

    /// <summary>Build even when an image with the same tag exists, without the engine's layer cache.</summary>
    public bool NoCache { get; init; }

    /// <summary>The package cache folder; null for the default (<see cref="PackageCache.DefaultDirectory"/>), "off" for none.</summary>
    public string? PackageCache { get; init; }
}

/// <summary>Progress of a build, for the CLI's display.</summary>
public sealed record BuildProgress(string Phase, string Text, int Step = 0, int Steps = 0);

/// <summary>
/// spec → lock → base → rendered context → <c>docker build</c> → in-image checks → tagged image + record.
/// A build whose checks fail keeps its layers in the cache but is not tagged for use.
/// </summary>
public sealed partial class ImageBuilder(
    DockerCli docker, BaseImageProvider bases, LockResolver resolver, CheckRunner checks, BuildRecordStore records,
    ToolsetCatalog catalog, DsvmPaths paths, TimeProvider time)
{
    /// <summary>Loads the lock next to the spec, writing a new one when it is missing or stale (unless frozen).</summary>
    public async Task<(EnvironmentLock Lock, bool Written)> EnsureLockAsync(
        EnvironmentSpec spec, bool frozen, Action<string>? log, CancellationToken ct)
    {
        var file = Path.Combine(spec.Directory, EnvironmentLock.FileName);
        if (File.Exists(file))
        {
            var existing = EnvironmentLock.Load(file);
            if (existing.Matches(spec))
            {
                return (existing, false);
            }

            if (frozen)
            {
                throw new LockException($"{file} is stale: {SpecLoader.FileName} changed since it was made; run `dsvm env lock {spec.Directory}`");
            }

            // The inputs include the base (distribution, suite, components, mirror).
            if (existing.AptInputs is { } inputs && inputs == LockResolver.AptInputs(spec, catalog))
            {
                // Its base, toolsets and packages are as they were: adding a pip requirement or editing the
                // description does not move hundreds of Debian packages (and the image's layers) to newer versions.
                log?.Invoke($"{SpecLoader.FileName} changed since the lock was made, not its Debian packages: keeping their pins"
                    + (spec.Pip is null ? "" : ", resolving the pip requirements"));
                var relocked = await resolver.RelockKeepingDebianPinsAsync(spec, existing, (await OnLocalBaseAsync(spec, existing, log, ct)).Base, log, ct);
                relocked.Save(spec.Directory);
                return (relocked, true);
            }

            log?.Invoke($"{SpecLoader.FileName} changed since the lock was made: re-resolving");
        }
        else if (frozen)
        {
            throw new LockException($"{spec.Directory} has no {EnvironmentLock.FileName}; run `dsvm env lock {spec.Directory}`");
        }

        var fresh = await resolver.ResolveAsync(spec, log, ct);
        fresh.Save(spec.Directory);
        return (fresh, true);
    }

    public async Task<BuildRecord> BuildAsync(EnvironmentSpec spec, BuildOptions options, IProgress<BuildProgress>? progress, CancellationToken ct)
    {
        var started = time.GetUtcNow();
        var sw = Stopwatch.StartNew();
        paths.EnsureCreated();
        await docker.EnsureEngineAsync(ct);

        void Say(string phase, string text) => progress?.Report(new BuildProgress(phase, text));

        Say("lock", "checking the lock");
        var (lockFile, _) = await EnsureLockAsync(spec, options.Frozen, t => Say("lock", t), ct);
        Say("base", "preparing the base image");
        var lockForBuild = await OnLocalBaseAsync(spec, lockFile, t => Say("base", t), ct);
        var rendered = DockerfileRenderer.Render(spec, lockForBuild, catalog);

        if (!options.NoCache && await docker.ImageExistsAsync(rendered.Image, ct))
        {
            var previous = records.Find(spec.Name, rendered.Tag);
            if (previous is { Status: BuildStatus.Succeeded })
            {
                await docker.TagAsync(rendered.Image, $"{rendered.Repository}:latest", ct);
                Say("done", $"{rendered.Image} is up to date");
                return previous with { Cached = true, Seconds = sw.Elapsed.TotalSeconds };
            }
        }

        var stamp = started.ToString("yyyyMMdd-HHmmss", CultureInfo.InvariantCulture);
        var logPath = Path.Combine(paths.Logs, $"build-{spec.Name}-{stamp}.log");
        var contextDir = Path.Combine(paths.Logs, $"build-{spec.Name}-{stamp}.context");
        rendered.Context.WriteTo(contextDir);

        Say("build", $"building {rendered.Image}");
        var tail = new Queue<string>();
        var step = "";
        var cacheDir = options.PackageCache is { } pc ? (pc == "off" ? null : pc) : PackageCache.DefaultDirectory(paths);
        await using var cache = PackageCache.StartFor(docker.Endpoint, cacheDir, [new Uri(lockFile.Base.Mirror)]);
        if (cache is null && cacheDir is not null)
        {
            Say("build", $"package cache not used: the engine at {docker.Endpoint} is not on this machine");
        }

        await using (var log = new StreamWriter(logPath))
        {
            using var tar = new MemoryStream();
            rendered.Context.WriteTar(tar);
            tar.Position = 0;
            var args = new List<string> { "build", "--tag", rendered.Image, "--rm", "--force-rm" };
            args.AddRange(PipLocker.NetworkArgs(lockForBuild.Pip?.Index));
            if (options.NoCache)
            {
                args.Add("--no-cache");
            }

            args.AddRange(cache?.BuildArguments ?? []);
            args.Add("-");
            var exit = await docker.StreamAsync(args, line =>
            {
                log.WriteLine(line);
                tail.Enqueue(line);
                if (tail.Count > 400)
                {
                    tail.Dequeue();
                }

                var m = StepLine().Match(line);
                if (m.Success)
                {
                    step = line;
                    progress?.Report(new BuildProgress("build", m.Groups[3].Value,
                        int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture), int.Parse(m.Groups[2].Value, CultureInfo.InvariantCulture)));
                }
            }, ct, tar);
            if (cache?.Stats is { } cs)
            {
                await log.WriteLineAsync($"dsvm package cache {cs.Directory}: {cs.Hits} files from the cache, {cs.Misses} fetched from the mirror, {cs.PassedThrough} index requests passed through");
            }

            await log.FlushAsync(ct);
            if (exit != 0)
            {
                var failure = Explain(tail.ToList(), step, spec);
                records.Save(new BuildRecord
                {
                    Environment = spec.Name, Image = rendered.Image, Tag = rendered.Tag, LockDigest = lockFile.Digest,
                    Status = BuildStatus.Failed, StartedAt = started, Seconds = sw.Elapsed.TotalSeconds, LogPath = logPath,
                    Failure = failure,
                });
                throw new BuildException($"{failure}\nfull log: {logPath}", logPath);
            }
        }

        Say("checks", $"running {rendered.Checks.Count} checks in {rendered.Image}");
        var results = await checks.RunAsync(rendered.Image, rendered.Checks, null, ct);
        var failed = results.Where(r => !r.Passed).ToList();
        var size = await ImageSizeAsync(rendered.Image, ct);
        var record = new BuildRecord
        {
            Environment = spec.Name, Image = rendered.Image, Tag = rendered.Tag, LockDigest = lockFile.Digest,
            Status = failed.Count == 0 ? BuildStatus.Succeeded : BuildStatus.Failed, StartedAt = started,
            Seconds = sw.Elapsed.TotalSeconds, LogPath = logPath, Checks = results, SizeBytes = size, PackageCache = cache?.Stats,
            Failure = failed.Count == 0 ? null : string.Join("\n", failed.Select(f => $"check {f.Id} failed: {f.Detail}")),
        };
        records.Save(record);
        if (failed.Count > 0)
        {
            // Keep the layers (the next build reuses them) but take away the tag workspaces would use.
            await docker.TagAsync(rendered.Image, $"dsvm-failed/{spec.Name}:{rendered.Tag}", ct);
            await docker.RemoveImageAsync(rendered.Image, ct);
            throw new ChecksFailedException(
                $"{spec.Name}: {failed.Count} of {results.Count} checks failed; the image is not tagged for use.\n"
                + string.Join("\n", failed.Select(f => $"  ✗ {f.Id}: {f.Detail.Replace("\n", "\n      ", StringComparison.Ordinal)}")));
        }

        await docker.TagAsync(rendered.Image, $"{rendered.Repository}:latest", ct);
        Say("done", $"built {rendered.Image} in {sw.Elapsed.TotalSeconds:F0} s");
        return record;
    }

    /// <summary>
    /// The lock pointed at the base image this machine has for it (made when there is none): the lock's own when here,
    /// else the local one (its packages are still pinned by the lock).
    /// </summary>
    private async Task<EnvironmentLock> OnLocalBaseAsync(EnvironmentSpec spec, EnvironmentLock lockFile, Action<string>? log, CancellationToken ct)
    {
        var local = await bases.EnsureAsync(spec.Base, lockFile.Base.RootfsDigest, log, ct);
        return lockFile with { Base = lockFile.Base with { RootfsDigest = local.Digest } };
    }

    public async Task<long> ImageSizeAsync(string image, CancellationToken ct)
    {
        return (await docker.InspectImageAsync(image, ct))?.Size ?? 0;
    }

    /// <summary>Turns the end of a failed build log into one clear message.</summary>
    internal static string Explain(IReadOnlyList<string> tail, string step, EnvironmentSpec spec)
    {
        if (PipLocker.ExplainBuildFailure(tail, spec) is { } pip)
        {
            return pip;
        }

        var missing = tail.Select(l => MissingVersion().Match(l)).Where(m => m.Success).ToList();
        if (missing.Count > 0)
        {
            var list = string.Join(", ", missing.Select(m => $"{m.Groups[2].Value}={m.Groups[1].Value}").Distinct());
            return $"the mirror no longer has {list} (pinned in {Path.Combine(spec.Directory, EnvironmentLock.FileName)}); "
                + $"run `dsvm env lock {spec.Directory}` to resolve current versions";
        }

        if (After(tail, "DSVM-LOCK-MISMATCH") is { } mismatch)
        {
            var diff = mismatch.Where(l => l.Length > 1 && (l[0] == '+' || l[0] == '-') && !l.StartsWith("+++", StringComparison.Ordinal) && !l.StartsWith("---", StringComparison.Ordinal)).Take(10);
            return "the image does not match environment.lock (the base drifted?); run `dsvm env lock` again:\n  " + string.Join("\n  ", diff);
        }

        if (After(tail, DpkgFilter.Marker) is { } links)
        {
            return $"a package links into /usr/share/nodejs, which the image leaves out ({DpkgFilter.SourcePath}; "
                + "add a path-include line for what it needs, see docs/environments.md):\n  "
                + string.Join("\n  ", links.Where(l => l.Contains(" -> ", StringComparison.Ordinal)).Take(10));
        }

        var alternative = tail.Select(l => MissingAlternative().Match(l)).FirstOrDefault(m => m.Success);
        if (alternative is not null)
        {
            var package = tail.Select(l => ConfigureFailed().Match(l)).FirstOrDefault(m => m.Success)?.Groups[1].Value ?? "a package";
            return $"{package} could not be set up: update-alternatives found no file at {alternative.Groups[1].Value}. If that file is or "
                + $"links into /usr/share/nodejs, which the image leaves out ({DpkgFilter.SourcePath}), add a path-include "
                + "line for it there (see docs/environments.md)";
        }

        var lines = tail.Where(l => !l.StartsWith(" ---> ", StringComparison.Ordinal)).TakeLast(8);
        return $"docker build failed at {(step.Length > 0 ? step : "the start")}:\n  " + string.Join("\n  ", lines);
    }

    /// <summary>
    /// The lines after the one an in-image check starts with <paramref name="marker"/>, or null when none does. Only at
    /// a line's start: the builder's "Step N/M : RUN …" line quotes every marker of its command mid-line.
    /// </summary>
    private static IEnumerable<string>? After(IReadOnlyList<string> tail, string marker)
    {
        var at = tail.ToList().FindIndex(l => l.StartsWith(marker, StringComparison.Ordinal));
        return at < 0 ? null : tail.Skip(at + 1);
    }

    [GeneratedRegex(@"^Step (\d+)/(\d+) : (.*)\z")]
    private static partial Regex StepLine();

    [GeneratedRegex(@"^update-alternatives: error: alternative path (\S+) doesn't exist")]
    private static partial Regex MissingAlternative();

    [GeneratedRegex(@"^dpkg: error processing package (\S+) \(--configure\):")]
    private static partial Regex ConfigureFailed();

    [GeneratedRegex(@"Version '([^']+)' for '([^']+)' was not found")]
    private static partial Regex MissingVersion();
}
