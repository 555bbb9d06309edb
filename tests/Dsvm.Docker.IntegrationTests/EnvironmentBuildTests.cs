using Dsvm.Core;
using Dsvm.Core.Checks;
using Dsvm.Core.Locks;
using Dsvm.Core.Specs;
using Dsvm.Images;
using Dsvm.Testing;

namespace Dsvm.Docker.IntegrationTests;

/// <summary>Real builds of the <c>minimal</c> environment in the local engine. One build is shared; variants reuse its layers.</summary>
[Trait("Requires", "Docker")]
[Collection("docker")]
public sealed class EnvironmentBuildTests
{
    private static ImageServices S => BuiltEnvironment.Services;

    [DockerFact]
    public async Task MinimalBuildsWithEveryCheckPassingAndIsTaggedLatest()
    {
        var (_, record) = await BuiltEnvironment.GetAsync("minimal");

        Assert.Equal(BuildStatus.Succeeded, record.Status);
        Assert.Matches("^dsvm/minimal:[0-9a-f]{16}$", record.Image);
        Assert.All(record.Checks, c => Assert.True(c.Passed, $"{c.Id}: {c.Detail}"));
        Assert.Contains(record.Checks, c => c.Kind == CheckKind.Notebook && c.Detail.Contains("executed hello.ipynb", StringComparison.Ordinal));
        Assert.Contains(record.Checks, c => c.Id == "kernel:python3");
        var id = await S.Docker.RunAsync(["image", "inspect", "--format", "{{.Id}}", record.Image], default);
        var latest = await S.Docker.RunAsync(["image", "inspect", "--format", "{{.Id}}", "dsvm/minimal:latest"], default);
        Assert.Equal(id.Stdout, latest.Stdout);
    }

    [DockerFact]
    public async Task SameLockAndFilesGiveTheSameTagAndACacheHit()
    {
        var (dir, first) = await BuiltEnvironment.GetAsync("minimal");

        var again = await S.Builder.BuildAsync(S.LoadSpec(dir), new BuildOptions { Frozen = true }, null, default);

        Assert.True(again.Cached);
        Assert.Equal(first.Tag, again.Tag);
    }

    [DockerFact]
    public async Task TestRerunsTheChecksTheImageCarries()
    {
        var (_, record) = await BuiltEnvironment.GetAsync("minimal");

        var results = await S.Checks.RunAsync(record.Image, null, null, default);

        Assert.Equal(record.Checks.Select(c => c.Id), results.Select(r => r.Id));
        Assert.All(results, r => Assert.True(r.Passed, $"{r.Id}: {r.Detail}"));
    }

    [DockerFact]
    public async Task ChangingASampleRebuildsOnlyTheLayersAfterThePackages()
    {
        var (shared, first) = await BuiltEnvironment.GetAsync("minimal");
        var dir = TestEnvironment.CopyEnvironment("minimal");
        File.Copy(Path.Combine(shared, EnvironmentLock.FileName), Path.Combine(dir, EnvironmentLock.FileName), overwrite: true);
        var notebook = Path.Combine(dir, "samples", "hello.ipynb");
        File.WriteAllText(notebook, File.ReadAllText(notebook).Replace("range(10)", "range(10) ", StringComparison.Ordinal));

        var record = await S.Builder.BuildAsync(S.LoadSpec(dir), new BuildOptions { Frozen = true }, null, default);

        Assert.Equal(BuildStatus.Succeeded, record.Status);
        Assert.NotEqual(first.Tag, record.Tag);
        var log = await File.ReadAllLinesAsync(record.LogPath!);
        var install = Array.FindIndex(log, l => l.StartsWith("Step ", StringComparison.Ordinal) && l.Contains("apt-get install", StringComparison.Ordinal));
        Assert.True(install >= 0, "the build log has the package install step");
        Assert.Contains("Using cache", log[install + 1], StringComparison.Ordinal);
        var samples = Array.FindIndex(log, l => l.StartsWith("Step ", StringComparison.Ordinal) && l.Contains("COPY samples/", StringComparison.Ordinal));
        Assert.DoesNotContain("Using cache", log[samples + 1], StringComparison.Ordinal);
    }

    [DockerFact]
    public async Task FailingCheckLeavesTheImageUntaggedAndTheGoodImageUntouched()
    {
        var (shared, good) = await BuiltEnvironment.GetAsync("minimal");
        var dir = TestEnvironment.CopyEnvironment("minimal");
        var specFile = Path.Combine(dir, SpecLoader.FileName);
        File.AppendAllText(specFile, "  commands:\n    - \"python3 -c 'import no_such_module_here'\"\n");
        var spec = S.LoadSpec(dir);
        // Same packages: reuse the shared lock, re-pointed at the changed spec (saves a resolution).
        (EnvironmentLock.Load(Path.Combine(shared, EnvironmentLock.FileName)) with { SpecDigest = spec.Digest }).Save(dir);
        var latestBefore = await S.Docker.RunAsync(["image", "inspect", "--format", "{{.Id}}", "dsvm/minimal:latest"], default);
        var started = DateTimeOffset.UtcNow.AddSeconds(-1);

        var ex = await Assert.ThrowsAsync<ChecksFailedException>(() => S.Builder.BuildAsync(spec, new BuildOptions(), null, default));

        Assert.Contains("no_such_module_here", ex.Message, StringComparison.Ordinal);
        Assert.Contains("not tagged", ex.Message, StringComparison.Ordinal);
        // The record of this build (its tag also covers the local base image's digest, which the builder aligns).
        var record = Assert.Single(S.Records.All(), r => r.Environment == "minimal" && r.StartedAt >= started
            && (r.Failure ?? "").Contains("no_such_module_here", StringComparison.Ordinal));
        Assert.Equal(BuildStatus.Failed, record.Status);
        Assert.False(await S.Docker.ImageExistsAsync(record.Image, default));
        var latestAfter = await S.Docker.RunAsync(["image", "inspect", "--format", "{{.Id}}", "dsvm/minimal:latest"], default);
        Assert.Equal(latestBefore.Stdout, latestAfter.Stdout);
        Assert.True(await S.Docker.ImageExistsAsync(good.Image, default));
    }

    [DockerFact]
    public async Task ALockedVersionTheMirrorNoLongerHasFailsWithAClearMessage()
    {
        var (shared, _) = await BuiltEnvironment.GetAsync("minimal");
        var dir = TestEnvironment.CopyEnvironment("minimal");
        var text = File.ReadAllText(Path.Combine(shared, EnvironmentLock.FileName));
        var tini = text.Split('\n').First(l => l.Contains("\"tini=", StringComparison.Ordinal));
        File.WriteAllText(Path.Combine(dir, EnvironmentLock.FileName), text.Replace(tini, "    - \"tini=0.0.0-gone1\"", StringComparison.Ordinal));

        var ex = await Assert.ThrowsAsync<BuildException>(() =>
            S.Builder.BuildAsync(S.LoadSpec(dir), new BuildOptions { Frozen = true }, null, default));

        Assert.Contains("no longer has tini=0.0.0-gone1", ex.Message, StringComparison.Ordinal);
        Assert.Contains("dsvm env lock", ex.Message, StringComparison.Ordinal);
        Assert.True(File.Exists(ex.LogPath));
    }

    [DockerFact]
    public async Task AnInvalidSpecIsRejectedBeforeAnythingIsBuiltOrLocked()
    {
        var dir = TestEnvironment.CopyEnvironment("minimal");
        var lockBefore = File.ReadAllText(Path.Combine(dir, EnvironmentLock.FileName));
        File.WriteAllText(Path.Combine(dir, SpecLoader.FileName), "name: minimal\ntoolsets: [python, jupyterlab, nosuch]\n");

        var ex = Assert.Throws<SpecValidationException>(() => S.LoadSpec(dir));

        Assert.Contains("environment.yaml:2:", ex.Message, StringComparison.Ordinal);
        Assert.Contains("unknown toolset 'nosuch'", ex.Message, StringComparison.Ordinal);
        Assert.Equal(lockBefore, File.ReadAllText(Path.Combine(dir, EnvironmentLock.FileName)));
        await Task.CompletedTask;
    }

    [DockerFact]
    public async Task LockingResolvesEveryDependencyAndRejectsUnknownPackagesWithTheirLine()
    {
        var dir = TestEnvironment.CopyEnvironment("minimal");
        var specFile = Path.Combine(dir, SpecLoader.FileName);
        File.WriteAllText(specFile, File.ReadAllText(specFile).Replace("gpu: none", "packages:\n  - sqlite3\n  - no-such-package-xyz\ngpu: none", StringComparison.Ordinal));

        var ex = await Assert.ThrowsAsync<SpecValidationException>(() => S.Resolver.ResolveAsync(S.LoadSpec(dir), null, default));

        var error = Assert.Single(ex.Errors);
        Assert.Equal("packages[1]", error.Path);
        Assert.True(error.Line > 0);
        Assert.Contains("unknown package 'no-such-package-xyz'", error.Message, StringComparison.Ordinal);

        File.WriteAllText(specFile, File.ReadAllText(specFile).Replace("  - no-such-package-xyz\n", "", StringComparison.Ordinal));
        var lockFile = await S.Resolver.ResolveAsync(S.LoadSpec(dir), null, default);
        Assert.Contains(lockFile.ExtraPackages, p => p.Name == "sqlite3");
        Assert.Contains(lockFile.ToolsetPackages, p => p.Name == "jupyterlab");
        Assert.Contains(lockFile.ToolsetPackages, p => p.Name == "python3-jupyter-server"); // a dependency, not named anywhere
        Assert.DoesNotContain(lockFile.ExtraPackages, p => p.Name == "jupyterlab");
        Assert.All(lockFile.AllPackages, p => Assert.False(string.IsNullOrWhiteSpace(p.Version)));
    }
}

[CollectionDefinition("docker", DisableParallelization = true)]
public sealed class DockerCollection;
