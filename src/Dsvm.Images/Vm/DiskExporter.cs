using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using CliWrap;
using CliWrap.Buffered;
using Dsvm.Core;

namespace Dsvm.Images.Vm;

[JsonConverter(typeof(JsonStringEnumConverter<DiskFormat>))]
public enum DiskFormat
{
    Qcow2,
    Raw,
}

public sealed record DiskExportOptions
{
    public DiskFormat Format { get; init; } = DiskFormat.Qcow2;

    /// <summary>Where the disk goes; by default <c>DATA/disks/ENV-TAG.FORMAT</c>.</summary>
    public string? Output { get; init; }

    /// <summary>Return an existing disk made from the same image and guest layer instead of making it again.</summary>
    public bool Reuse { get; init; }
}

/// <summary>One exported disk; also written next to it as <c>DISK.json</c>.</summary>
public sealed record DiskExport
{
    public required string Environment { get; init; }
    public required string Image { get; init; }
    public required string VmImage { get; init; }
    public required string Path { get; init; }
    public required DiskFormat Format { get; init; }
    public required long VirtualBytes { get; init; }
    public required long FileBytes { get; init; }
    public required string Kernel { get; init; }
    public required string RootUuid { get; init; }
    public double Seconds { get; init; }
    public bool Cached { get; init; }
}

/// <summary>Makes bootable disks from environment images (the qemu backend asks through this).</summary>
public interface IDiskExporter
{
    Task<DiskExport> ExportAsync(string image, DiskExportOptions options, Action<string>? log, CancellationToken ct);
}

/// <summary>
/// environment image → guest layer (kernel, systemd, services) → <c>docker export</c> → rootfs folder →
/// MBR disk: syslinux's mbr.bin, a FAT boot partition (kernel, initrd, syslinux installed through mtools), an ext4
/// root partition written by <c>mkfs.ext4 -d</c> at its offset → optionally <c>qemu-img convert</c> to qcow2.
/// Nothing is mounted and no loop device is used.
/// </summary>
public sealed class DiskExporter(DockerCli docker, DsvmPaths paths) : IDiskExporter
{
    private const long MiB = 1024 * 1024;
    private const long BootStart = 1 * MiB;

    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web) { WriteIndented = true };

    /// <summary>The programs an export runs.</summary>
    public static IReadOnlyList<string> Tools(DiskFormat format) =>
        format == DiskFormat.Qcow2
            ? ["tar", "mkfs.ext4", "mkfs.fat", "mcopy", "syslinux", "sfdisk", "qemu-img"]
            : ["tar", "mkfs.ext4", "mkfs.fat", "mcopy", "syslinux", "sfdisk"];

    public string DisksFolder => System.IO.Path.Combine(paths.Data, "disks");

    public async Task<DiskExport> ExportAsync(string image, DiskExportOptions options, Action<string>? log, CancellationToken ct)
    {
        HostTools.Require(Tools(options.Format), needMbr: true);
        await docker.EnsureEngineAsync(ct);
        var sw = Stopwatch.StartNew();
        var info = await docker.RunAsync(
            ["image", "inspect", "--format", "{{.Id}}|{{index .Config.Labels \"io.opendsvm.environment\"}}|{{json .Config.Env}}", image], ct);
        if (!info.Ok)
        {
            var env = image.StartsWith("dsvm/", StringComparison.Ordinal) ? image[5..].Split(':')[0] : image;
            throw new NotFoundException($"environment image '{image}' is not built: run `dsvm env build {env}` first");
        }

        var parts = info.Stdout.Trim().Split('|', 3);
        var imageId = parts[0];
        var environment = parts[1] is { Length: > 0 } e && e != "<no value>" ? e : "image";
        var imageEnv = JsonSerializer.Deserialize<List<string>>(parts[2]) ?? [];
        var vmTag = VmGuest.Tag(imageId);
        var vmImage = $"{VmGuest.Repository}{environment}:{vmTag}";
        var extension = options.Format == DiskFormat.Qcow2 ? "qcow2" : "raw";
        var output = System.IO.Path.GetFullPath(options.Output ?? System.IO.Path.Combine(DisksFolder, $"{environment}-{vmTag}.{extension}"));
        var recordFile = output + ".json";
        if (options.Reuse && File.Exists(output) && File.Exists(recordFile)
            && JsonSerializer.Deserialize<DiskExport>(await File.ReadAllTextAsync(recordFile, ct), Json) is { } previous
            && previous.VmImage == vmImage && previous.Format == options.Format)
        {
            return previous with { Cached = true, Seconds = 0 };
        }

        Directory.CreateDirectory(System.IO.Path.GetDirectoryName(output)!);
        paths.EnsureCreated();
        await EnsureVmImageAsync(image, vmImage, log, ct);

        var work = System.IO.Path.Combine(paths.Cache, "vm-export", $"{environment}-{Guid.NewGuid():N}"[..24]);
        var rootfs = System.IO.Path.Combine(work, "rootfs");
        Directory.CreateDirectory(rootfs);
        string? container = null;
        try
        {
            log?.Invoke($"exporting the file system of {vmImage}");
            var created = await docker.RunAsync(["create", "--label", "io.opendsvm.export=true", vmImage, "/bin/true"], ct);
            if (!created.Ok)
            {
                throw new DiskExportException($"docker create {vmImage} failed: {created.Tail(2)}");
            }

            container = created.Stdout.Trim();
            var stderr = new StringBuilder();
            var pipe = Cli.Wrap(docker.Executable).WithArguments(["export", container])
                       | Cli.Wrap("tar").WithArguments(["-x", "-p", "--numeric-owner", "-C", rootfs, "-f", "-"])
                           .WithStandardErrorPipe(PipeTarget.ToStringBuilder(stderr))
                           .WithValidation(CommandResultValidation.None);
            var untar = await pipe.ExecuteAsync(ct);
            if (untar.ExitCode != 0)
            {
                throw new DiskExportException($"unpacking the exported file system failed: {stderr.ToString().Trim()}");
            }

            await docker.RunAsync(["rm", "-f", container], CancellationToken.None);
            container = null;

            var rootUuid = Guid.NewGuid().ToString();
            var (kernel, initrd, version) = FindKernel(rootfs);
            FixUp(rootfs, rootUuid, imageEnv);

            var usedBytes = await DirectoryBytesAsync(rootfs, ct);
            var rootBytes = AlignMiB(usedBytes + Math.Max(usedBytes / 4, 1024 * MiB));
            var bootBytes = AlignMiB(Math.Max(64 * MiB, new FileInfo(kernel).Length + new FileInfo(initrd).Length + 32 * MiB));
            var rootStart = BootStart + bootBytes;
            var total = rootStart + rootBytes;
            var raw = options.Format == DiskFormat.Raw ? output + ".tmp" : System.IO.Path.Combine(work, "disk.raw");

            log?.Invoke($"making the boot partition (syslinux, kernel {version})");
            var bootImage = System.IO.Path.Combine(work, "boot.img");
            await HostTools.RunAsync("mkfs.fat", ["-n", "DSVMBOOT", "-C", bootImage, (bootBytes / 1024).ToString(CultureInfo.InvariantCulture)], ct);
            var cfg = System.IO.Path.Combine(work, "syslinux.cfg");
            await File.WriteAllTextAsync(cfg, SyslinuxConfig(rootUuid), ct);
            await HostTools.RunAsync("mcopy", ["-i", bootImage, kernel, "::vmlinuz"], ct);
            await HostTools.RunAsync("mcopy", ["-i", bootImage, initrd, "::initrd.img"], ct);
            await HostTools.RunAsync("mcopy", ["-i", bootImage, cfg, "::syslinux.cfg"], ct);
            await HostTools.RunAsync("syslinux", ["--install", bootImage], ct);

            log?.Invoke($"partitioning a {total / MiB} MiB disk");
            File.Delete(raw);
            await using (var disk = new FileStream(raw, FileMode.CreateNew, FileAccess.Write))
            {
                disk.SetLength(total);
            }

            await HostTools.RunAsync("sfdisk", ["--quiet", "--no-reread", "--no-tell-kernel", raw], ct, PartitionScript(bootBytes, rootStart));
            await WriteAtAsync(raw, 0, (await File.ReadAllBytesAsync(HostTools.MbrPath, ct)).AsMemory(0, 440), ct);
            await CopySparseAsync(bootImage, raw, BootStart, ct);

            log?.Invoke($"writing the root file system ({usedBytes / MiB} MiB of files into {rootBytes / MiB} MiB)");
            await HostTools.RunAsync("mkfs.ext4",
            [
                "-q", "-F", "-L", "dsvm-root", "-U", rootUuid, "-m", "1", "-E", $"offset={rootStart},root_owner=0:0",
                "-d", rootfs, raw, $"{rootBytes / 1024}k",
            ], ct);

            if (options.Format == DiskFormat.Qcow2)
            {
                log?.Invoke("converting to qcow2");
                var tmp = output + ".tmp";
                File.Delete(tmp);
                await HostTools.RunAsync("qemu-img", ["convert", "-f", "raw", "-O", "qcow2", raw, tmp], ct);
                File.Move(tmp, output, overwrite: true);
            }
            else
            {
                File.Move(raw, output, overwrite: true);
            }

            var result = new DiskExport
            {
                Environment = environment, Image = image, VmImage = vmImage, Path = output, Format = options.Format,
                VirtualBytes = total, FileBytes = new FileInfo(output).Length, Kernel = version, RootUuid = rootUuid,
                Seconds = sw.Elapsed.TotalSeconds,
            };
            await File.WriteAllTextAsync(recordFile, JsonSerializer.Serialize(result, Json), ct);
            return result;
        }
        finally
        {
            if (container is not null)
            {
                await docker.RunAsync(["rm", "-f", container], CancellationToken.None);
            }

            await Cli.Wrap("rm").WithArguments(["-rf", "--one-file-system", work])
                .WithValidation(CommandResultValidation.None).ExecuteAsync(CancellationToken.None);
        }
    }

    /// <summary>Builds the guest layer FROM the environment image (cached by the engine and by its tag).</summary>
    private async Task EnsureVmImageAsync(string image, string vmImage, Action<string>? log, CancellationToken ct)
    {
        if (await docker.ImageExistsAsync(vmImage, ct))
        {
            return;
        }

        log?.Invoke($"building the machine layer {vmImage} (kernel, systemd, services)");
        using var tar = new MemoryStream();
        VmGuest.Context(image).WriteTar(tar);
        tar.Position = 0;
        var tail = new Queue<string>();
        var exit = await docker.StreamAsync(["build", "--tag", vmImage, "--rm", "--force-rm", "-"], line =>
        {
            tail.Enqueue(line);
            if (tail.Count > 20)
            {
                tail.Dequeue();
            }

            if (line.StartsWith("Step ", StringComparison.Ordinal))
            {
                log?.Invoke(line.Length > 120 ? line[..120] + "…" : line);
            }
        }, ct, tar);
        if (exit != 0)
        {
            throw new DiskExportException($"building the machine layer failed:\n{string.Join('\n', tail.TakeLast(8))}");
        }
    }

    internal static string SyslinuxConfig(string rootUuid) =>
        "# OpenDSVM boot configuration\nDEFAULT linux\nPROMPT 0\nTIMEOUT 0\nLABEL linux\n"
        + "  KERNEL /vmlinuz\n  INITRD /initrd.img\n  APPEND " + VmGuest.KernelCommandLine(rootUuid) + "\n";

    /// <summary>MBR: a bootable FAT16 (LBA) partition from 1 MiB, then the Linux root to the end.</summary>
    internal static string PartitionScript(long bootBytes, long rootStart) =>
        "label: dos\n"
        + $"start={BootStart / 512}, size={bootBytes / 512}, type=e, bootable\n"
        + $"start={rootStart / 512}, type=83\n";

    private static long AlignMiB(long bytes) => (bytes + MiB - 1) / MiB * MiB;

    private static (string Kernel, string Initrd, string Version) FindKernel(string rootfs)
    {
        var boot = System.IO.Path.Combine(rootfs, "boot");
        var kernel = Directory.Exists(boot)
            ? Directory.EnumerateFiles(boot, "vmlinuz-*").Order(StringComparer.Ordinal).LastOrDefault()
            : null;
        if (kernel is null)
        {
            throw new DiskExportException("the machine layer has no kernel in /boot (linux-image-amd64 did not install)");
        }

        var version = System.IO.Path.GetFileName(kernel)["vmlinuz-".Length..];
        var initrd = System.IO.Path.Combine(boot, "initrd.img-" + version);
        if (!File.Exists(initrd))
        {
            throw new DiskExportException($"the machine layer has no initramfs for kernel {version}");
        }

        return (kernel, initrd, version);
    }

    /// <summary>What <c>docker export</c> leaves container-shaped: fstab, hostname, hosts, machine-id, the image's ENV.</summary>
    internal static void FixUp(string rootfs, string rootUuid, IReadOnlyList<string> imageEnv)
    {
        string P(string relative) => System.IO.Path.Combine(rootfs, relative);
        File.Delete(P(".dockerenv"));
        File.WriteAllText(P("etc/fstab"), $"# OpenDSVM machine disk\nUUID={rootUuid} / ext4 rw,noatime,errors=remount-ro 0 1\n");
        File.WriteAllText(P("etc/hostname"), "dsvm\n");
        File.WriteAllText(P("etc/hosts"), "127.0.0.1 localhost\n127.0.1.1 dsvm\n::1 localhost ip6-localhost ip6-loopback\n");
        File.WriteAllText(P("etc/machine-id"), "");
        var resolv = P("etc/resolv.conf");
        if (File.Exists(resolv) && new FileInfo(resolv).Length == 0)
        {
            File.Delete(resolv);
        }

        Directory.CreateDirectory(P("etc/dsvm"));
        File.WriteAllText(P("etc/dsvm/image.env"), ImageEnvFile(imageEnv));
    }

    /// <summary>The image's ENV as a systemd EnvironmentFile (the Jupyter service gets what the container gets).</summary>
    internal static string ImageEnvFile(IReadOnlyList<string> env)
    {
        var sb = new StringBuilder("# The environment image's ENV, for dsvm-jupyter.service\n");
        foreach (var entry in env)
        {
            var eq = entry.IndexOf('=', StringComparison.Ordinal);
            if (eq <= 0 || entry.Contains('\n', StringComparison.Ordinal))
            {
                continue;
            }

            var value = entry[(eq + 1)..].Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal);
            sb.Append(entry[..eq]).Append("=\"").Append(value).Append("\"\n");
        }

        return sb.ToString();
    }

    /// <summary>The bytes the files take (du: symbolic links are not followed), plus room for the metadata.</summary>
    private static async Task<long> DirectoryBytesAsync(string dir, CancellationToken ct)
    {
        var du = await HostTools.RunAsync("du", ["-s", "-B1", "-x", dir], ct);
        return long.Parse(du.Split('\t', 2)[0].Trim(), CultureInfo.InvariantCulture) + 64 * MiB;
    }

    private static async Task WriteAtAsync(string file, long offset, ReadOnlyMemory<byte> data, CancellationToken ct)
    {
        await using var stream = new FileStream(file, FileMode.Open, FileAccess.Write);
        stream.Position = offset;
        await stream.WriteAsync(data, ct);
    }

    /// <summary>Copies a file into another at an offset, skipping zero blocks so the target stays sparse.</summary>
    internal static async Task CopySparseAsync(string source, string target, long offset, CancellationToken ct)
    {
        await using var input = File.OpenRead(source);
        await using var output = new FileStream(target, FileMode.Open, FileAccess.Write);
        var buffer = new byte[1024 * 1024];
        long position = 0;
        int read;
        while ((read = await input.ReadAsync(buffer, ct)) > 0)
        {
            for (var i = 0; i < read; i += 4096)
            {
                var n = Math.Min(4096, read - i);
                var block = buffer.AsMemory(i, n);
                if (block.Span.ContainsAnyExcept((byte)0))
                {
                    output.Position = offset + position + i;
                    await output.WriteAsync(block, ct);
                }
            }

            position += read;
        }
    }
}
