using Dsvm.Core;
using Dsvm.Core.Locks;
using Dsvm.Core.Specs;
using Dsvm.Images;
using Dsvm.Testing;

namespace Dsvm.Docker.IntegrationTests;

/// <summary>
/// <c>pip:</c> in environment.yaml, for real: wheels made by the test, a PEP 503 index on 127.0.0.1, the lock made
/// by pip's dry-run report in the image's Python, the build installing exactly the lock by hash, and an index that
/// loses a version failing the build with a message that names it.
/// </summary>
[Trait("Requires", "Docker")]
[Collection("docker")]
public sealed class PipEnvironmentTests
{
    private static ImageServices S => BuiltEnvironment.Services;

    /// <summary>
    /// The minimal environment renamed, locked as it was before a pip section was added (with the Debian pins of the
    /// minimal image the other tests built, so its Debian layers are that image's), then given the pip section.
    /// </summary>
    private static async Task<string> EnvironmentAsync(string name, PipTestIndex index, params string[] requirements)
    {
        var dir = TestEnvironment.CopyEnvironment("minimal");
        var minimal = EnvironmentLock.Load(Path.Combine((await BuiltEnvironment.GetAsync("minimal")).Dir, EnvironmentLock.FileName));
        var spec = Path.Combine(dir, SpecLoader.FileName);
        var text = File.ReadAllText(spec).Replace("name: minimal", $"name: {name}", StringComparison.Ordinal);
        File.WriteAllText(spec, text);
        var before = S.LoadSpec(dir);
        (minimal with { Environment = name, SpecDigest = before.Digest, AptInputs = LockResolver.AptInputs(before, S.Catalog) }).Save(dir);
        File.WriteAllText(spec, text + $"pip:\n  index: {index.Url}\n  requirements:\n" + string.Concat(requirements.Select(r => $"    - {r}\n")));
        return dir;
    }

    [DockerFact]
    public async Task PipRequirementsAreLockedWithHashesInstalledExactlyAndALostVersionIsNamed()
    {
        using var index = new PipTestIndex();
        var b1 = index.Add("dsvm_b", "1.0");
        var a1 = index.Add("dsvm_a", "1.0", "dsvm-b>=1.0");
        var c1 = index.Add("dsvm_c", "1.0");
        try
        {
            // Lock: the requirement and its dependency, each with version and sha256; Debian's own Python
            // distributions (jupyterlab, ...) are not re-pinned.
            var dir = await EnvironmentAsync("pip-test", index, "dsvm-a==1.0");
            var debian = EnvironmentLock.Load(Path.Combine(dir, EnvironmentLock.FileName)).AllPackages;
            var spec = S.LoadSpec(dir);
            var said = new List<string>();
            var (lockFile, written) = await S.Builder.EnsureLockAsync(spec, frozen: false, said.Add, default);
            Assert.True(written);
            // Adding pip requirements keeps the Debian pins: no package moves, the Debian layers stay those built.
            Assert.Contains(said, l => l.Contains("not its Debian packages: keeping their pins", StringComparison.Ordinal));
            Assert.Equal(debian, lockFile.AllPackages);
            Assert.Equal(index.Url, lockFile.Pip!.Index);
            Assert.Equal([new LockedPipPackage("dsvm-a", "1.0", a1), new LockedPipPackage("dsvm-b", "1.0", b1)], lockFile.Pip.Packages);
            Assert.Equal(lockFile.Digest, EnvironmentLock.Load(Path.Combine(dir, EnvironmentLock.FileName)).Digest);

            // Build: exactly the lock, by hash, without resolving; importable in the image.
            var record = await S.Builder.BuildAsync(spec, new BuildOptions { Frozen = true }, null, default);
            Assert.Equal(BuildStatus.Succeeded, record.Status);
            var log = await File.ReadAllTextAsync(record.LogPath!);
            Assert.Contains("pip install --no-deps --require-hashes", log, StringComparison.Ordinal);
            var imported = await S.Docker.RunAsync(["run", "--rm", "--entrypoint", "python3", record.Image, "-c",
                "import dsvm_a, dsvm_b; print(dsvm_a.__version__, dsvm_b.__version__, dsvm_a.__file__)"], default);
            Assert.True(imported.Ok, imported.Stderr);
            Assert.Matches(@"^1\.0 1\.0 /usr/local/lib/python3[.0-9]*/dist-packages/dsvm_a/__init__\.py\n$", imported.Stdout);

            // The index loses dsvm-b 1.0 (2.0 appears): a build of a lock made before pins it and fails naming it.
            var dir2 = await EnvironmentAsync("pip-test", index, "dsvm-a==1.0", "dsvm-c==1.0");
            var spec2 = S.LoadSpec(dir2);
            var (lock2, _) = await S.Builder.EnsureLockAsync(spec2, frozen: false, null, default);
            Assert.Contains(new LockedPipPackage("dsvm-c", "1.0", c1), lock2.Pip!.Packages);
            index.Remove("dsvm_b", "1.0");
            index.Add("dsvm_b", "2.0");
            var failed = await Assert.ThrowsAsync<BuildException>(() => S.Builder.BuildAsync(spec2, new BuildOptions { Frozen = true }, null, default));
            Assert.StartsWith($"the index {index.Url} no longer has dsvm-b==1.0 (pinned in {Path.Combine(dir2, EnvironmentLock.FileName)})", failed.Message, StringComparison.Ordinal);

            // Locking a requirement the index cannot satisfy is an error at its line and column, naming what it has.
            var dir3 = await EnvironmentAsync("pip-test", index, "dsvm-b==1.0");
            var error = Assert.Single(Assert.Throws<SpecValidationException>(
                () => S.Builder.EnsureLockAsync(S.LoadSpec(dir3), frozen: false, null, default).GetAwaiter().GetResult()).Errors);
            Assert.Equal("pip.requirements[0]", error.Path);
            var lines = File.ReadAllLines(Path.Combine(dir3, SpecLoader.FileName));
            Assert.Equal("    - dsvm-b==1.0", lines[error.Line - 1]);
            Assert.Equal(7, error.Column);
            Assert.Contains("satisfies 'dsvm-b==1.0' (it has: 2.0)", error.Message, StringComparison.Ordinal);
        }
        finally
        {
            // This test's images only; the layers the minimal environment shares stay.
            foreach (var repository in new[] { "dsvm/pip-test", $"{PipLocker.LockRepository}pip-test" })
            {
                var tags = await S.Docker.RunAsync(["image", "ls", "--format", "{{.Repository}}:{{.Tag}}", repository], default);
                foreach (var image in tags.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries))
                {
                    await S.Docker.RunAsync(["rmi", image], default);
                }
            }
        }
    }
}
