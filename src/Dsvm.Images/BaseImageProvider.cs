using System.Security.Cryptography;
using CliWrap;
using CliWrap.Buffered;
using Dsvm.Core;
using Dsvm.Core.Locks;
using Dsvm.Core.Specs;

namespace Dsvm.Images;

/// <summary>A base image in the local engine, made from a debootstrap rootfs.</summary>
public sealed record BaseImage(string Image, string Digest);

/// <summary>
/// Makes the base image of a suite with <c>debootstrap --variant=minbase</c> (no public image registry is
/// reachable), normalises the rootfs (no logs, caches or machine ids; fixed mtimes; sorted tar) so its digest
/// depends on its packages, and imports it. Cached per distribution/suite/components.
/// </summary>
public sealed class BaseImageProvider(DockerCli docker, DsvmPaths paths)
{
    /// <summary>Prefix of every base image repository.</summary>
    public const string Repository = "dsvm-base/";

    private const string KeyLabel = "io.opendsvm.base.key";
    private const string DigestLabel = "io.opendsvm.base.digest";

    /// <summary>Apt settings baked into every base: no recommends, retries, and no docs or man pages (smaller images).</summary>
    internal const string AptConfig = """
        APT::Install-Recommends "false";
        APT::Install-Suggests "false";
        Acquire::Retries "3";
        Dpkg::Use-Pty "false";

        """;

    internal const string DpkgSlim = """
        path-exclude=/usr/share/doc/*
        path-include=/usr/share/doc/*/copyright
        path-exclude=/usr/share/man/*
        path-exclude=/usr/share/info/*
        path-exclude=/usr/share/lintian/*
        path-exclude=/usr/share/locale/*
        path-include=/usr/share/locale/locale.alias

        """;

    /// <summary>The base recorded in a lock: that exact digest when present, else the newest base of the same key.</summary>
    public async Task<BaseImage> EnsureAsync(BaseSpec spec, string? wantedDigest, Action<string>? log, CancellationToken ct)
    {
        var key = spec.CacheKey;
        var existing = await FindAsync(key, ct);
        if (wantedDigest is not null)
        {
            var exact = existing.FirstOrDefault(b => b.Digest == wantedDigest);
            if (exact is not null)
            {
                return exact;
            }
        }

        if (existing.Count > 0)
        {
            if (wantedDigest is not null)
            {
                log?.Invoke($"note: the lock was made on base {Short(wantedDigest)}; using local base {Short(existing[0].Digest)} (locked package versions are still enforced)");
            }

            return existing[0];
        }

        return await CreateAsync(spec, log, ct);
    }

    private static string Short(string digest) => digest.Replace("sha256:", "", StringComparison.Ordinal)[..12];

    public async Task<IReadOnlyList<BaseImage>> FindAsync(string key, CancellationToken ct)
    {
        var result = new List<BaseImage>();
        foreach (var image in await docker.ListImagesAsync($"{KeyLabel}={key}", ct))
        {
            // Images built on a base inherit its labels: only the base repositories themselves count.
            if (image.Labels is null || !image.Labels.TryGetValue(DigestLabel, out var digest) || digest.Length == 0)
            {
                continue;
            }

            result.AddRange((image.RepoTags ?? []).Where(t => t.StartsWith(Repository, StringComparison.Ordinal)).Select(t => new BaseImage(t, digest)));
        }

        return result;
    }

    /// <summary>Runs debootstrap and imports the result (about 30 s for trixie minbase).</summary>
    public async Task<BaseImage> CreateAsync(BaseSpec spec, Action<string>? log, CancellationToken ct)
    {
        if (!OperatingSystem.IsLinux() || Environment.UserName != "root")
        {
            throw new EnvironmentNotReadyException("making a base image runs debootstrap, which needs root on Linux");
        }

        paths.EnsureCreated();
        var key = spec.CacheKey;
        await using var gate = await FileGate.AcquireAsync(Path.Combine(paths.BaseCache, key + ".lock"), ct);
        var again = await FindAsync(key, ct);
        if (again.Count > 0)
        {
            return again[0];
        }

        var work = Path.Combine(paths.BaseCache, $"{key}.{Environment.ProcessId}");
        var rootfs = Path.Combine(work, "rootfs");
        var tarFile = Path.Combine(work, "rootfs.tar");
        var debs = Path.Combine(paths.BaseCache, "debs", key);
        Directory.CreateDirectory(rootfs);
        Directory.CreateDirectory(debs);
        try
        {
            log?.Invoke($"debootstrap {spec.Suite} ({string.Join(",", spec.Components)}) from {spec.Mirror}");
            var boot = await Cli.Wrap("debootstrap")
                .WithArguments(
                [
                    "--variant=minbase", $"--components={string.Join(',', spec.Components)}", $"--cache-dir={debs}",
                    spec.Suite, rootfs, spec.Mirror,
                ])
                .WithValidation(CommandResultValidation.None)
                .ExecuteBufferedAsync(ct);
            if (boot.ExitCode != 0)
            {
                var tail = string.Join('\n', (boot.StandardOutput + boot.StandardError).Split('\n').TakeLast(6));
                throw new BuildException($"debootstrap {spec.Suite} failed (exit {boot.ExitCode}):\n{tail}");
            }

            Normalise(rootfs);
            log?.Invoke("packing the base rootfs");
            var tar = await Cli.Wrap("tar")
                .WithArguments(
                [
                    "--sort=name", "--mtime=@946684800", "--numeric-owner", "--xattrs",
                    "--pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime",
                    "-C", rootfs, "-cf", tarFile, ".",
                ])
                .WithValidation(CommandResultValidation.None)
                .ExecuteBufferedAsync(ct);
            if (tar.ExitCode != 0)
            {
                throw new BuildException($"packing the base rootfs failed: {tar.StandardError.Trim()}");
            }

            string digest;
            await using (var stream = File.OpenRead(tarFile))
            {
                digest = "sha256:" + Convert.ToHexStringLower(await SHA256.HashDataAsync(stream, ct));
            }

            var image = DockerfileRenderer.BaseImageName(new BaseLock
            {
                Distribution = spec.Distribution, Suite = spec.Suite, Components = spec.Components, Mirror = spec.Mirror,
                RootfsDigest = digest,
            });
            log?.Invoke($"importing {image}");
            var import = await docker.RunAsync(
            [
                "import",
                "--change", $"LABEL {KeyLabel}={key}",
                "--change", $"LABEL {DigestLabel}={digest}",
                "--change", "LABEL io.opendsvm.managed=true",
                "--change", "ENV LANG=C.UTF-8",
                "--change", "CMD [\"/bin/bash\"]",
                tarFile, image,
            ], ct);
            if (!import.Ok)
            {
                throw new BuildException($"docker import of the base rootfs failed: {import.Tail()}");
            }

            return new BaseImage(image, digest);
        }
        finally
        {
            await Cli.Wrap("rm").WithArguments(["-rf", "--one-file-system", work])
                .WithValidation(CommandResultValidation.None).ExecuteAsync(CancellationToken.None);
        }
    }

    /// <summary>Removes what differs between two debootstrap runs of the same packages, and adds the apt/dpkg config.</summary>
    internal static void Normalise(string rootfs)
    {
        string P(string relative) => Path.Combine(rootfs, relative);
        foreach (var dir in new[] { "var/log", "var/cache/apt", "var/lib/apt/lists", "var/cache/debconf", "var/lib/dpkg" })
        {
            if (!Directory.Exists(P(dir)))
            {
                continue;
            }

            foreach (var file in Directory.EnumerateFiles(P(dir), "*", SearchOption.AllDirectories))
            {
                var name = Path.GetFileName(file);
                var remove = dir switch
                {
                    "var/log" => true,
                    "var/cache/apt" => name.EndsWith(".bin", StringComparison.Ordinal),
                    "var/lib/apt/lists" => name != "lock",
                    _ => name.EndsWith("-old", StringComparison.Ordinal),
                };
                if (remove)
                {
                    File.Delete(file);
                }
            }
        }

        foreach (var file in new[] { "etc/hostname", "etc/resolv.conf", "var/cache/ldconfig/aux-cache", "root/.bash_history" })
        {
            if (File.Exists(P(file)))
            {
                File.Delete(P(file));
            }
        }

        File.WriteAllText(P("etc/machine-id"), "");
        Directory.CreateDirectory(P("etc/apt/apt.conf.d"));
        File.WriteAllText(P("etc/apt/apt.conf.d/90opendsvm"), AptConfig);
        Directory.CreateDirectory(P("etc/dpkg/dpkg.cfg.d"));
        File.WriteAllText(P("etc/dpkg/dpkg.cfg.d/90opendsvm-slim"), DpkgSlim);
    }
}
