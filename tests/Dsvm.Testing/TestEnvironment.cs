using CliWrap;
using CliWrap.Buffered;
using Dsvm.Core;
using Dsvm.Images;
using Xunit;

namespace Dsvm.Testing;

/// <summary>Locations shared by the Docker tests of one run.</summary>
public static class TestEnvironment
{
    /// <summary>The repository root (holds OpenDSVM.slnx).</summary>
    public static string RepoRoot { get; } = FindRoot();

    /// <summary>
    /// One DSVM home for the whole test run (<c>DSVM_TEST_HOME</c>, set by test.sh): the base image, lock
    /// resolutions and builds are reused by every test class.
    /// </summary>
    public static string Home { get; } =
        Environment.GetEnvironmentVariable("DSVM_TEST_HOME") is { Length: > 0 } h ? h : Path.Combine(Path.GetTempPath(), "opendsvm-tests");

    public static DsvmPaths Paths => new DsvmPaths(Path.Combine(Home, "data"), Path.Combine(Home, "cache")).EnsureCreated();

    public static string EnvironmentsDir => Path.Combine(RepoRoot, "environments");

    /// <summary>Test build configuration (Debug/Release), to find sibling outputs such as dsvm.dll.</summary>
    public static string Configuration { get; } =
        AppContext.BaseDirectory.Contains($"{Path.DirectorySeparatorChar}Release{Path.DirectorySeparatorChar}", StringComparison.Ordinal) ? "Release" : "Debug";

    public static string CliDll => Path.Combine(RepoRoot, "src", "Dsvm.Cli", "bin", Configuration, "net10.0", "dsvm.dll");

    private static string FindRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "OpenDSVM.slnx")))
        {
            dir = dir.Parent;
        }

        return dir?.FullName ?? throw new InvalidOperationException("repository root (OpenDSVM.slnx) not found");
    }

    /// <summary>Copies a curated environment (spec, lock, samples) into a fresh folder the test may change.</summary>
    public static string CopyEnvironment(string name, string? suffix = null)
    {
        var target = Path.Combine(Home, "work", $"{name}-{suffix ?? Guid.NewGuid().ToString("N")[..8]}");
        if (Directory.Exists(target))
        {
            Directory.Delete(target, recursive: true);
        }

        CopyDirectory(Path.Combine(EnvironmentsDir, name), target);
        return target;
    }

    private static void CopyDirectory(string source, string target)
    {
        Directory.CreateDirectory(target);
        foreach (var file in Directory.EnumerateFiles(source, "*", SearchOption.AllDirectories))
        {
            var dest = Path.Combine(target, Path.GetRelativePath(source, file));
            Directory.CreateDirectory(Path.GetDirectoryName(dest)!);
            File.Copy(file, dest, overwrite: true);
        }
    }

    private static readonly Lazy<bool> DockerReachable = new(() =>
    {
        try
        {
            var r = Cli.Wrap("docker").WithArguments(["info", "--format", "{{.ServerVersion}}"])
                .WithValidation(CommandResultValidation.None).ExecuteBufferedAsync().GetAwaiter().GetResult();
            return r.ExitCode == 0;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return false;
        }
    });

    /// <summary>
    /// Why Docker tests cannot run here, or null. Under test.sh (<c>DSVM_REQUIRE_DOCKER=1</c>) a missing engine is
    /// a failure, never a silent skip.
    /// </summary>
    public static string? DockerSkipReason =>
        DockerReachable.Value || Environment.GetEnvironmentVariable("DSVM_REQUIRE_DOCKER") == "1"
            ? null
            : "no Docker engine reachable (run ./test.sh, which starts one)";
}

/// <summary>A test that starts containers: skipped with a visible reason when no engine is reachable outside test.sh.</summary>
public sealed class DockerFactAttribute : FactAttribute
{
    public DockerFactAttribute()
    {
        if (TestEnvironment.DockerSkipReason is { } reason)
        {
            Skip = reason;
        }
    }
}

/// <summary>
/// Builds an environment once per test run and shares the result: the slow part of the Docker tests. If the
/// committed lock pins a version the mirror has since dropped, it re-locks once (that is Debian moving on, not
/// a code failure) and says so on the test output.
/// </summary>
public sealed class BuiltEnvironment
{
    private static readonly Dictionary<string, Task<(string Dir, BuildRecord Record)>> Builds = new(StringComparer.Ordinal);
    private static readonly Lock Gate = new();

    public static ImageServices Services { get; } = new(TestEnvironment.Paths);

    public static Task<(string Dir, BuildRecord Record)> GetAsync(string name)
    {
        lock (Gate)
        {
            if (!Builds.TryGetValue(name, out var task))
            {
                task = BuildAsync(name);
                Builds[name] = task;
            }

            return task;
        }
    }

    private static async Task<(string Dir, BuildRecord Record)> BuildAsync(string name)
    {
        var dir = TestEnvironment.CopyEnvironment(name, "shared");
        var spec = Services.LoadSpec(dir);
        try
        {
            return (dir, await Services.Builder.BuildAsync(spec, new BuildOptions(), null, CancellationToken.None));
        }
        catch (BuildException ex) when (ex.Message.Contains("mirror no longer has", StringComparison.Ordinal))
        {
            Console.Error.WriteLine($"[tests] {name}: {ex.Message.Split('\n')[0]}; re-locking");
            File.Delete(Path.Combine(dir, Dsvm.Core.Locks.EnvironmentLock.FileName));
            return (dir, await Services.Builder.BuildAsync(spec, new BuildOptions(), null, CancellationToken.None));
        }
    }
}
