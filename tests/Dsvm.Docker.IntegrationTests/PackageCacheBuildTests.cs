using Dsvm.Core.Locks;
using Dsvm.Images;
using Dsvm.Testing;

namespace Dsvm.Docker.IntegrationTests;

/// <summary>
/// The build's package cache with the real engine and the real mirror: a small image on the <c>minimal</c> base
/// that installs packages with apt, built twice without the layer cache (<c>--no-cache</c>), first with an empty
/// package cache, then with the cache the first build filled; the arguments are the ones <see cref="ImageBuilder"/>
/// passes. A behaviour check (what came from the mirror), not a timing: bench/build-cache.sh times whole builds.
/// </summary>
[Trait("Requires", "Docker")]
[Collection("docker")]
public sealed class PackageCacheBuildTests
{
    private static ImageServices S => BuiltEnvironment.Services;

    [DockerFact]
    public async Task A_rebuild_with_a_warm_package_cache_fetches_no_package_from_the_mirror_and_leaves_no_proxy_in_the_image()
    {
        var spec = S.LoadSpec(Path.Combine(TestEnvironment.EnvironmentsDir, "minimal"));
        var lockFile = EnvironmentLock.Load(Path.Combine(spec.Directory, EnvironmentLock.FileName));
        var baseImage = await S.Bases.EnsureAsync(spec.Base, lockFile.Base.RootfsDigest, null, default);
        var context = new BuildContext();
        context.Add("Dockerfile", $"""
            FROM {baseImage.Image}
            RUN apt-get update -q && apt-get install -y -q --no-install-recommends jq tini && apt-get clean && rm -rf /var/lib/apt/lists/*

            """);
        const string image = "dsvm-test/package-cache:latest";
        using var cacheDir = new TempDir();

        async Task<PackageCacheStats> BuildAsync()
        {
            await using var cache = PackageCache.Start(cacheDir.Path, [new Uri(lockFile.Base.Mirror)]);
            using var tar = new MemoryStream();
            context.WriteTar(tar);
            tar.Position = 0;
            var log = new List<string>();
            var exit = await S.Docker.StreamAsync(["build", "--no-cache", "--rm", "--force-rm", "--tag", image, .. cache.BuildArguments, "-"], log.Add, default, tar);
            Assert.True(exit == 0, string.Join('\n', log.TakeLast(20)));
            return cache.Stats;
        }

        try
        {
            var cold = await BuildAsync();
            var warm = await BuildAsync();

            Assert.True(cold.Misses >= 3, $"the cold build fetched {cold.Misses} files through the cache: {cold}");
            Assert.Equal(0, cold.Hits);
            Assert.Contains(Directory.EnumerateFiles(Path.Combine(cacheDir.Path, new Uri(lockFile.Base.Mirror).Authority, "debs")), f => Path.GetFileName(f).StartsWith("jq_", StringComparison.Ordinal));
            // Every file the cold build fetched, the warm build took from the cache; only InRelease went to the mirror.
            Assert.Equal(0, warm.Misses);
            Assert.Equal(cold.Misses, warm.Hits);
            Assert.True(warm.BytesFromMirror < 1 << 20, $"{warm.BytesFromMirror} bytes came from the mirror");
            var env = await S.Docker.RunAsync(["image", "inspect", "--format", "{{json .Config.Env}}", image], default);
            var history = await S.Docker.RunAsync(["history", "--no-trunc", image], default);
            Assert.DoesNotContain("proxy", env.Stdout, StringComparison.OrdinalIgnoreCase);
            Assert.DoesNotContain("127.0.0.1", history.Stdout, StringComparison.Ordinal);
            var run = await S.Docker.RunAsync(["run", "--rm", "--network", "none", image, "jq", "--version"], default);
            Assert.True(run.Ok, run.Tail());
        }
        finally
        {
            await S.Docker.RunAsync(["rmi", image], default);
        }
    }
}
