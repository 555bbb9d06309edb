using System.Diagnostics;
using System.Globalization;
using Dsvm.Core;
using Dsvm.Core.Specs;
using Dsvm.Images;

namespace Dsvm.Bench;

/// <summary>
/// Build timings per environment, on a copy of it: warm (image present), cold (<c>--no-cache</c>), one sample
/// changed, one package added (lock and build timed apart), and the image size.
/// </summary>
internal sealed class BuildSuite(BenchOptions options, BenchHome home, ImageServices s)
{
    private const double SampleRebuildGoalSeconds = 10;
    private const double DatascienceSizeGoalBytes = 3.5e9;

    private readonly List<BuildRow> _rows = [];
    private readonly List<string> _notes = [];

    public async Task<BuildSuiteResult> RunAsync(CancellationToken ct)
    {
        var goals = new List<GoalRow>();
        foreach (var env in options.Envs)
        {
            var latest = await LatestTag.CaptureAsync(s.Docker, env, ct);
            var made = new List<string>();
            try
            {
                var (sampleSeconds, size) = await RunEnvironmentAsync(env, latest, made, ct);
                goals.Add(new GoalRow($"{env}: sample-change rebuild < {SampleRebuildGoalSeconds:0} s",
                    sampleSeconds is { } t ? $"{Report.Seconds(t)} s" : "not measured", sampleSeconds is { } x ? x < SampleRebuildGoalSeconds : null));
                if (env == "datascience")
                {
                    goals.Add(new GoalRow("datascience image < 3.5 GB",
                        size is > 0 ? Report.Size(size.Value) : "not measured", size is > 0 ? size < DatascienceSizeGoalBytes : null));
                }
            }
            catch (DsvmException ex)
            {
                _rows.Add(new BuildRow(env, "(suite stopped)", null, "-", null, FirstLine(ex.Message)));
                Log.Warn($"{env}: {ex.Message}");
            }
            finally
            {
                if (await latest.RestoreAsync() is { } problem)
                {
                    _notes.Add(problem);
                }

                // The changed variants are the benchmark's own: remove them so the next run rebuilds them for real.
                foreach (var image in made)
                {
                    var r = await s.Docker.RunAsync(["rmi", image], CancellationToken.None);
                    if (!r.Ok)
                    {
                        _notes.Add($"could not remove the benchmark's image {image}: {r.Tail(1)}");
                    }
                }
            }
        }

        _notes.Add("warm = the image with this content tag is already in the engine: the builder returns at once (no docker build, no checks).");
        _notes.Add("every time includes the in-image checks (notebooks executed) when a build ran; cold rebuilds all layers but reuses the debootstrap base image.");
        return new BuildSuiteResult(_rows, goals, _notes);
    }

    /// <summary>Returns the sample-change rebuild time and the image size.</summary>
    private async Task<(double? SampleSeconds, long? Size)> RunEnvironmentAsync(string env, LatestTag latest, List<string> made, CancellationToken ct)
    {
        var dir = home.CopyEnvironment(env, Path.Combine("work", $"build-{env}"));
        Log.Say($"{env}: working copy {dir}");
        var spec = s.LoadSpec(dir);

        // Make sure the image is there (and recorded in the benchmark's home), so the next build is a warm one.
        var (prepare, _) = await TimedBuildAsync(env, "prepare (image as found)", spec, new BuildOptions(), ct);
        if (prepare is null)
        {
            return (null, null);
        }

        await latest.AddOursAsync(prepare.Image, ct);
        var size = prepare.SizeBytes > 0 ? prepare.SizeBytes : await s.Builder.ImageSizeAsync(prepare.Image, ct);

        await TimedBuildAsync(env, "warm (image present)", spec, new BuildOptions(), ct, size);

        if (options.SkipCold)
        {
            _rows.Add(new BuildRow(env, "cold (--no-cache)", null, "-", null, "skipped (--skip-cold)"));
        }
        else
        {
            // The legacy builder's --no-cache: every layer is rebuilt and the packages are downloaded again.
            var (cold, _) = await TimedBuildAsync(env, "cold (--no-cache)", spec, new BuildOptions { NoCache = true }, ct);
            if (cold is not null)
            {
                await latest.AddOursAsync(cold.Image, ct);
                size = cold.SizeBytes;
            }
        }

        var sampleSeconds = await SampleChangeAsync(env, dir, latest, made, ct);
        await PackageAddedAsync(env, dir, latest, made, ct);
        return (sampleSeconds, size);
    }

    private async Task<double?> SampleChangeAsync(string env, string dir, LatestTag latest, List<string> made, CancellationToken ct)
    {
        var spec = s.LoadSpec(dir);
        var notebook = spec.Samples is null
            ? null
            : Directory.EnumerateFiles(Path.Combine(dir, spec.Samples), "*.ipynb", SearchOption.AllDirectories).Order(StringComparer.Ordinal).FirstOrDefault();
        if (notebook is null)
        {
            _rows.Add(new BuildRow(env, "sample changed", null, "-", null, "no notebook in the samples folder"));
            return null;
        }

        var original = await File.ReadAllTextAsync(notebook, ct);
        try
        {
            // One space appended inside a source string. Should an image with that content already be in the engine
            // (someone else's), one more space gives a content nobody built, so the rebuild is real.
            var spaces = 0;
            var existed = false;
            for (var k = 1; k <= 5; k++)
            {
                var changed = Notebooks.AppendInSource(original, new string(' ', k))
                    ?? throw new BuildException($"{notebook}: no \"source\" string to change");
                await File.WriteAllTextAsync(notebook, changed, ct);
                spec = s.LoadSpec(dir);
                var rendered = await Engine.RenderAsync(s, spec, ct);
                spaces = k;
                existed = rendered is not null && await s.Docker.ImageExistsAsync(rendered.Image, ct);
                if (!existed)
                {
                    break;
                }
            }

            var note = $"{Path.GetRelativePath(dir, notebook)}: {spaces} space{(spaces > 1 ? "s" : "")} appended to a source string"
                + (existed ? "; an image with this content was already in the engine" : "");
            var (record, seconds) = await TimedBuildAsync(env, "sample changed", spec, new BuildOptions(), ct, note: note);
            if (record is null)
            {
                return null;
            }

            await latest.AddOursAsync(record.Image, ct);
            if (!existed && !record.Cached)
            {
                made.Add(record.Image);
            }

            return seconds;
        }
        finally
        {
            await File.WriteAllTextAsync(notebook, original, CancellationToken.None);
        }
    }

    private async Task PackageAddedAsync(string env, string dir, LatestTag latest, List<string> made, CancellationToken ct)
    {
        var specFile = Path.Combine(dir, SpecLoader.FileName);
        var spec = s.LoadSpec(dir);
        var (text, package) = SpecEdits.AddPackage(await File.ReadAllTextAsync(specFile, ct), spec.Packages);
        await File.WriteAllTextAsync(specFile, text, ct);
        spec = s.LoadSpec(dir);

        var sw = Stopwatch.StartNew();
        try
        {
            var (_, written) = await s.Builder.EnsureLockAsync(spec, frozen: false, t => Log.Say($"{env}: {t}"), ct);
            sw.Stop();
            _rows.Add(new BuildRow(env, $"package added ({package}): lock", sw.Elapsed.TotalSeconds, "-", null,
                written ? "apt resolution in a base container" : "lock already matched (not re-resolved)"));
        }
        catch (DsvmException ex)
        {
            _rows.Add(new BuildRow(env, $"package added ({package}): lock", null, "-", null, "failed: " + FirstLine(ex.Message)));
            Log.Warn($"{env}: lock failed: {ex.Message}");
            return;
        }

        var rendered = await Engine.RenderAsync(s, spec, ct);
        var existed = rendered is not null && await s.Docker.ImageExistsAsync(rendered.Image, ct);
        var (record, _) = await TimedBuildAsync(env, $"package added ({package}): build", spec, new BuildOptions(), ct,
            note: existed ? "an image with this content was already in the engine (someone else's)" : null);
        if (record is not null)
        {
            await latest.AddOursAsync(record.Image, ct);
            if (!existed && !record.Cached)
            {
                made.Add(record.Image);
            }
        }
    }

    /// <summary>Builds, adds a row (or a failure row) and returns the record (null when the build failed) and the time.</summary>
    private async Task<(BuildRecord? Record, double Seconds)> TimedBuildAsync(
        string env, string scenario, EnvironmentSpec spec, BuildOptions buildOptions, CancellationToken ct, long? knownSize = null, string? note = null)
    {
        Log.Say($"{env}: {scenario}");
        var progress = new BuildLog(env);
        var sw = Stopwatch.StartNew();
        try
        {
            var record = await s.Builder.BuildAsync(spec, buildOptions, progress, ct);
            sw.Stop();
            var size = record.SizeBytes > 0 ? record.SizeBytes : knownSize ?? await s.Builder.ImageSizeAsync(record.Image, ct);
            _rows.Add(new BuildRow(env, scenario, sw.Elapsed.TotalSeconds, record.Cached ? "image present: no build" : CachedSteps(record.LogPath),
                size, note is null ? $"tag {record.Tag}" : $"{note}; tag {record.Tag}"));
            Log.Say($"{env}: {scenario}: {sw.Elapsed.TotalSeconds:0.00} s");
            return (record, sw.Elapsed.TotalSeconds);
        }
        catch (DsvmException ex)
        {
            sw.Stop();
            _rows.Add(new BuildRow(env, scenario, null, "-", null, $"failed after {sw.Elapsed.TotalSeconds:0} s: {FirstLine(ex.Message)}"));
            Log.Warn($"{env}: {scenario} failed: {ex.Message}");
            return (null, sw.Elapsed.TotalSeconds);
        }
    }

    /// <summary>"k/n steps cached" from a legacy-builder log (" ---> Using cache" after a step line).</summary>
    internal static string CachedSteps(string? logPath)
    {
        if (logPath is null || !File.Exists(logPath))
        {
            return "?";
        }

        var lines = File.ReadAllLines(logPath);
        var steps = lines.Count(l => l.StartsWith("Step ", StringComparison.Ordinal));
        var cached = lines.Count(l => l.Contains("---> Using cache", StringComparison.Ordinal));
        // Step 1 (FROM) never says "Using cache": count it as reused, it is the base image.
        return steps == 0 ? "?" : string.Create(CultureInfo.InvariantCulture, $"{Math.Min(cached + 1, steps)}/{steps} steps cached");
    }

    private static string FirstLine(string message) => message.Split('\n')[0];
}

/// <summary>Text edits on a notebook: the file stays as written except for the change.</summary>
internal static class Notebooks
{
    /// <summary>Appends <paramref name="suffix"/> inside the first <c>"source"</c> string (plain or the first of a list); null when there is none.</summary>
    public static string? AppendInSource(string json, string suffix)
    {
        var key = json.IndexOf("\"source\"", StringComparison.Ordinal);
        if (key < 0)
        {
            return null;
        }

        var i = key + "\"source\"".Length;
        i = SkipSpace(json, i);
        if (i >= json.Length || json[i] != ':')
        {
            return null;
        }

        i = SkipSpace(json, i + 1);
        if (i < json.Length && json[i] == '[')
        {
            i = SkipSpace(json, i + 1);
        }

        if (i >= json.Length || json[i] != '"')
        {
            return null;
        }

        // Find the closing quote of the string, stepping over escapes.
        for (i++; i < json.Length; i++)
        {
            if (json[i] == '\\')
            {
                i++;
            }
            else if (json[i] == '"')
            {
                return json[..i] + suffix + json[i..];
            }
        }

        return null;
    }

    private static int SkipSpace(string s, int i)
    {
        while (i < s.Length && char.IsWhiteSpace(s[i]))
        {
            i++;
        }

        return i;
    }
}

/// <summary>Text edits on environment.yaml that keep the rest of the file as it is.</summary>
internal static class SpecEdits
{
    private static readonly string[] Candidates = ["less", "sqlite3", "jq", "tree"];

    /// <summary>
    /// Adds one package: <c>packages: [sqlite3]</c> appended when the spec has no packages, otherwise one more item
    /// (<c>less</c>, or the next candidate not listed yet) in the existing list, block or flow style.
    /// </summary>
    public static (string Text, string Package) AddPackage(string yaml, IReadOnlyList<string> existing)
    {
        var lines = yaml.Replace("\r\n", "\n", StringComparison.Ordinal).Split('\n').ToList();
        var at = lines.FindIndex(l => l.StartsWith("packages:", StringComparison.Ordinal));
        if (existing.Count == 0 || at < 0)
        {
            if (at >= 0)
            {
                // "packages: []" or an empty key: replace it.
                lines[at] = "packages: [sqlite3]";
                return (string.Join('\n', lines), "sqlite3");
            }

            return (yaml.TrimEnd('\n') + "\npackages: [sqlite3]\n", "sqlite3");
        }

        var package = Candidates.First(c => !existing.Contains(c, StringComparer.Ordinal));
        var rest = lines[at]["packages:".Length..];
        var close = rest.LastIndexOf(']');
        if (close >= 0)
        {
            lines[at] = "packages:" + rest[..close].TrimEnd() + ", " + package + rest[close..];
            return (string.Join('\n', lines), package);
        }

        var last = at;
        var indent = "  ";
        for (var i = at + 1; i < lines.Count; i++)
        {
            var trimmed = lines[i].TrimStart();
            if (trimmed.StartsWith("- ", StringComparison.Ordinal))
            {
                if (last == at)
                {
                    indent = lines[i][..(lines[i].Length - trimmed.Length)];
                }

                last = i;
            }
            else if (trimmed.Length > 0 && !trimmed.StartsWith('#'))
            {
                break;
            }
        }

        lines.Insert(last + 1, $"{indent}- {package}");
        return (string.Join('\n', lines), package);
    }
}
