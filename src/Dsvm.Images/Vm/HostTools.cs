using CliWrap;
using CliWrap.Buffered;
using Dsvm.Core;

namespace Dsvm.Images.Vm;

/// <summary>The host programs disks and machines are made with, run by argument list; a missing one names its package.</summary>
public static class HostTools
{
    /// <summary>Program → Debian package.</summary>
    public static readonly IReadOnlyDictionary<string, string> Packages = new Dictionary<string, string>(StringComparer.Ordinal)
    {
        ["mkfs.ext4"] = "e2fsprogs",
        ["mkfs.fat"] = "dosfstools",
        ["mcopy"] = "mtools",
        ["syslinux"] = "syslinux",
        ["sfdisk"] = "fdisk",
        ["qemu-img"] = "qemu-utils",
        ["qemu-system-x86_64"] = "qemu-system-x86",
        ["tar"] = "tar",
    };

    /// <summary>syslinux's MBR boot code (package syslinux-common).</summary>
    public const string MbrPath = "/usr/lib/syslinux/mbr/mbr.bin";

    /// <summary>The first program of <paramref name="programs"/> (or file) missing, as one install hint, or null.</summary>
    public static string? Missing(IEnumerable<string> programs, bool needMbr = false)
    {
        var missing = programs.Where(p => Find(p) is null).ToList();
        var packages = missing.Select(p => Packages.TryGetValue(p, out var pkg) ? pkg : p).ToList();
        if (needMbr && !File.Exists(MbrPath))
        {
            missing.Add(MbrPath);
            packages.Add("syslinux-common");
        }

        return missing.Count == 0
            ? null
            : $"{string.Join(", ", missing)} not found: install {string.Join(' ', packages.Distinct())} "
              + $"(apt-get install -y --no-install-recommends {string.Join(' ', packages.Distinct())}, or scripts/host-setup.sh --tests)";
    }

    public static void Require(IEnumerable<string> programs, bool needMbr = false)
    {
        if (Missing(programs, needMbr) is { } why)
        {
            throw new EnvironmentNotReadyException(why);
        }
    }

    /// <summary>The program's path on PATH (plus the sbin folders, which a non-root PATH may lack), or null.</summary>
    public static string? Find(string program)
    {
        var path = Environment.GetEnvironmentVariable("PATH") ?? "";
        foreach (var dir in path.Split(':', StringSplitOptions.RemoveEmptyEntries).Concat(["/usr/local/sbin", "/usr/sbin", "/sbin"]))
        {
            var candidate = Path.Combine(dir, program);
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }

        return null;
    }

    /// <summary>Runs a program; a non-zero exit throws with the program's last output lines.</summary>
    public static async Task<string> RunAsync(string program, IEnumerable<string> args, CancellationToken ct, string? stdin = null)
    {
        var exe = Find(program) ?? throw new EnvironmentNotReadyException(Missing([program])!);
        var cmd = Cli.Wrap(exe).WithArguments(args)
            .WithEnvironmentVariables(e => e.Set("MTOOLS_SKIP_CHECK", "1").Set("LC_ALL", "C"))
            .WithValidation(CommandResultValidation.None);
        if (stdin is not null)
        {
            cmd = cmd.WithStandardInputPipe(PipeSource.FromString(stdin));
        }

        var r = await cmd.ExecuteBufferedAsync(ct);
        if (r.ExitCode != 0)
        {
            var text = (r.StandardError.Trim().Length > 0 ? r.StandardError : r.StandardOutput).Trim();
            var tail = string.Join('\n', text.Split('\n').TakeLast(6));
            throw new DiskExportException($"{program} failed (exit {r.ExitCode}): {tail}");
        }

        return r.StandardOutput;
    }
}

/// <summary>Making a machine disk failed.</summary>
public sealed class DiskExportException(string message) : DsvmException(message)
{
    public override string Kind => "export";
}
