using System.Globalization;

namespace Dsvm.Qemu;

/// <summary>Everything one VM's command line is made from.</summary>
public sealed record VmLaunchSpec
{
    public required string Name { get; init; }
    public required string Accelerator { get; init; }
    public required int Vcpus { get; init; }
    public required long MemoryMiB { get; init; }
    public required string SystemDisk { get; init; }
    public required string HomeDisk { get; init; }
    public required string ConfigDrive { get; init; }
    public required string ConsoleLog { get; init; }
    public required string PidFile { get; init; }
    public required string QmpSocket { get; init; }
    public required string BindAddress { get; init; }
    public required int HostPort { get; init; }
    public int GuestPort { get; init; } = 8888;
}

/// <summary>The qemu-system-x86_64 argument list (never a shell string).</summary>
public static class QemuArguments
{
    /// <summary>The serial of the home disk: the guest finds it at /dev/disk/by-id/virtio-dsvm-home.</summary>
    public const string HomeSerial = "dsvm-home";

    public static IReadOnlyList<string> Build(VmLaunchSpec s)
    {
        var kvm = s.Accelerator == "kvm";
        return
        [
            "-name", $"{Opt(s.Name)},process={Opt(s.Name)}",
            "-machine", "pc",
            "-accel", kvm ? "kvm" : "tcg",
            "-cpu", kvm ? "host" : "max",
            "-smp", s.Vcpus.ToString(CultureInfo.InvariantCulture),
            "-m", s.MemoryMiB.ToString(CultureInfo.InvariantCulture),
            "-nodefaults", "-no-user-config", "-display", "none",
            "-serial", $"file:{Opt(s.ConsoleLog)}",
            // The system disk is a disposable overlay: no need to flush it.
            "-drive", $"file={Opt(s.SystemDisk)},if=none,id=system,format=qcow2,cache=unsafe,discard=unmap",
            "-device", "virtio-blk-pci,drive=system,bootindex=0",
            "-drive", $"file={Opt(s.HomeDisk)},if=none,id=home,format=qcow2,cache=writeback,discard=unmap",
            "-device", $"virtio-blk-pci,drive=home,serial={HomeSerial}",
            "-drive", $"file={Opt(s.ConfigDrive)},if=none,id=config,format=raw,readonly=on",
            "-device", "virtio-blk-pci,drive=config,serial=dsvm-config",
            // User networking, restricted (no route out), Jupyter forwarded to a loopback port only.
            "-netdev", $"user,id=net0,restrict=on,hostfwd=tcp:{s.BindAddress}:{s.HostPort}-:{s.GuestPort}",
            "-device", "virtio-net-pci,netdev=net0",
            "-device", "virtio-rng-pci",
            "-qmp", $"unix:{Opt(s.QmpSocket)},server=on,wait=off",
            "-pidfile", s.PidFile,
            "-daemonize",
        ];
    }

    /// <summary>qemu option values escape a comma by doubling it.</summary>
    internal static string Opt(string value) => value.Replace(",", ",,", StringComparison.Ordinal);
}
