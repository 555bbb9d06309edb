using System.Globalization;
using Dsvm.Core;
using Dsvm.Core.Locks;
using Dsvm.Core.Specs;
using Dsvm.Images;
using Spectre.Console;

namespace Dsvm.Bench;

/// <summary>
/// The benchmark's own DSVM data folder and its working copies of the curated environments: the repository's
/// files are only ever read.
/// </summary>
internal sealed class BenchHome
{
    public BenchHome(string root, string repoRoot)
    {
        Root = Path.GetFullPath(root);
        RepoRoot = repoRoot;
        Paths = new DsvmPaths(Path.Combine(Root, "data"), Path.Combine(Root, "cache")).EnsureCreated();
    }

    public string Root { get; }
    public string RepoRoot { get; }
    public DsvmPaths Paths { get; }

    /// <summary>Where copies that `dsvm up --env NAME` finds live (DSVM_ENVIRONMENTS of the CLI row).</summary>
    public string EnvironmentsRoot => Path.Combine(Root, "environments");

    public string RepoEnvironment(string name) => Path.Combine(RepoRoot, "environments", name);

    /// <summary>A fresh copy of <c>environments/NAME</c> (spec, lock, samples) at <paramref name="relativeTarget"/> under the home.</summary>
    public string CopyEnvironment(string name, string relativeTarget)
    {
        var source = RepoEnvironment(name);
        if (!File.Exists(Path.Combine(source, SpecLoader.FileName)))
        {
            throw new NotFoundException($"no curated environment '{name}' in {Path.Combine(RepoRoot, "environments")}");
        }

        var target = Path.Combine(Root, relativeTarget);
        if (Directory.Exists(target))
        {
            Directory.Delete(target, recursive: true);
        }

        foreach (var file in Directory.EnumerateFiles(source, "*", SearchOption.AllDirectories))
        {
            var relative = Path.GetRelativePath(source, file);
            if (relative.Contains(".ipynb_checkpoints", StringComparison.Ordinal))
            {
                continue;
            }

            var dest = Path.Combine(target, relative);
            Directory.CreateDirectory(Path.GetDirectoryName(dest)!);
            File.Copy(file, dest, overwrite: true);
        }

        return target;
    }

    /// <summary>The repository root: the folder above this program (or the working directory) that holds OpenDSVM.slnx.</summary>
    public static string FindRepoRoot()
    {
        foreach (var start in new[] { AppContext.BaseDirectory, Directory.GetCurrentDirectory() })
        {
            for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
            {
                if (File.Exists(Path.Combine(dir.FullName, "OpenDSVM.slnx")))
                {
                    return dir.FullName;
                }
            }
        }

        throw new NotFoundException("repository root (OpenDSVM.slnx) not found above the benchmark or the working directory");
    }
}

/// <summary>Progress lines on stderr, so stdout holds only the tables or the JSON.</summary>
internal static class Log
{
    private static readonly IAnsiConsole Err = CreateErr();

    private static IAnsiConsole CreateErr()
    {
        var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Error) });
        if (Console.IsErrorRedirected)
        {
            // A log file: one line per message rather than wrapped at 80 columns.
            console.Profile.Width = 1000;
        }

        return console;
    }

    public static void Say(string text) =>
        Err.MarkupLine($"[grey]{DateTime.Now.ToString("HH:mm:ss", CultureInfo.InvariantCulture)}[/] {Markup.Escape(text)}");

    public static void Warn(string text) =>
        Err.MarkupLine($"[grey]{DateTime.Now.ToString("HH:mm:ss", CultureInfo.InvariantCulture)}[/] [yellow]{Markup.Escape(text)}[/]");
}

/// <summary>Build progress to stderr, in order (<see cref="Progress{T}"/> would post to the thread pool): phases and build steps.</summary>
internal sealed class BuildLog(string env) : IProgress<BuildProgress>
{
    public void Report(BuildProgress value) =>
        Log.Say(value.Steps > 0 ? $"{env}: step {value.Step}/{value.Steps}: {Trim(value.Text)}" : $"{env}: {value.Text}");

    private static string Trim(string text) => text.Length > 100 ? text[..100] + "…" : text;
}

/// <summary>Engine look-ups the benchmark needs beyond <see cref="DockerCli"/>.</summary>
internal static class Engine
{
    /// <summary>The image id a reference points at, or null when there is no such image.</summary>
    public static async Task<string?> ImageIdAsync(DockerCli docker, string image, CancellationToken ct)
    {
        var r = await docker.RunAsync(["image", "inspect", "--format", "{{.Id}}", image], ct);
        return r.Ok && r.Stdout.Trim() is { Length: > 0 } id ? id : null;
    }

    /// <summary>
    /// The image a build of <paramref name="spec"/> would be tagged with, from the lock next to it (pointed at the
    /// local base as <see cref="ImageBuilder"/> does), without building; null when there is no valid lock.
    /// </summary>
    public static async Task<RenderedBuild?> RenderAsync(ImageServices s, EnvironmentSpec spec, CancellationToken ct)
    {
        var file = Path.Combine(spec.Directory, EnvironmentLock.FileName);
        if (!File.Exists(file))
        {
            return null;
        }

        var lockFile = EnvironmentLock.Load(file);
        if (!lockFile.Matches(spec))
        {
            return null;
        }

        var key = new BaseSpec
        {
            Distribution = lockFile.Base.Distribution, Suite = lockFile.Base.Suite, Components = lockFile.Base.Components,
            Mirror = lockFile.Base.Mirror,
        }.CacheKey;
        var local = await s.Bases.FindAsync(key, ct);
        if (local.Count > 0 && local.All(b => b.Digest != lockFile.Base.RootfsDigest))
        {
            lockFile = lockFile with { Base = lockFile.Base with { RootfsDigest = local[0].Digest } };
        }

        return DockerfileRenderer.Render(spec, lockFile, s.Catalog);
    }
}

/// <summary>
/// Every build moves <c>dsvm/ENV:latest</c>. The benchmark puts it back where it was when it finds it on an image
/// the benchmark itself made or re-tagged, so other users of the engine keep their <c>:latest</c>.
/// </summary>
internal sealed class LatestTag
{
    private readonly DockerCli _docker;
    private readonly string _reference;
    private readonly string? _before;
    private readonly HashSet<string> _ours = new(StringComparer.Ordinal);

    private LatestTag(DockerCli docker, string reference, string? before)
    {
        _docker = docker;
        _reference = reference;
        _before = before;
    }

    public static async Task<LatestTag> CaptureAsync(DockerCli docker, string environment, CancellationToken ct)
    {
        var reference = $"dsvm/{environment}:latest";
        return new LatestTag(docker, reference, await Engine.ImageIdAsync(docker, reference, ct));
    }

    /// <summary>Marks an image the benchmark built or re-tagged as <c>:latest</c>.</summary>
    public async Task AddOursAsync(string image, CancellationToken ct)
    {
        if (await Engine.ImageIdAsync(_docker, image, ct) is { } id)
        {
            _ours.Add(id);
        }
    }

    /// <summary>Puts <c>:latest</c> back; returns a note when it did.</summary>
    public async Task<string?> RestoreAsync()
    {
        if (_before is null)
        {
            return null;
        }

        var now = await Engine.ImageIdAsync(_docker, _reference, CancellationToken.None);
        if (now == _before || now is null || !_ours.Contains(now))
        {
            return null;
        }

        var r = await _docker.RunAsync(["tag", _before, _reference], CancellationToken.None);
        return r.Ok ? null : $"could not put {_reference} back on {_before[..Math.Min(19, _before.Length)]}: {r.Tail(2)}";
    }
}
