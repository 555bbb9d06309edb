using Docker.DotNet.Models;

namespace Dsvm.Docker;

/// <summary>
/// How GPUs reach a container. With the NVIDIA container runtime installed, a device request does it all.
/// Without it, OpenDSVM passes the device nodes and bind-mounts the host's driver libraries (which must match the
/// host's kernel module) into <c>/usr/local/nvidia</c>; the image carries only the CUDA user-space libraries.
/// </summary>
public static class GpuMapping
{
    public const string LibDir = "/usr/local/nvidia/lib64";
    public const string BinDir = "/usr/local/nvidia/bin";

    /// <summary>Driver libraries a CUDA program needs from the host.</summary>
    public static readonly string[] DriverLibraries =
    [
        "libcuda.so.1", "libnvidia-ml.so.1", "libnvidia-ptxjitcompiler.so.1", "libnvidia-nvvm.so.4", "libcudadebugger.so.1",
    ];

    public static void Apply(HostConfig host, IList<string> env, int gpus, bool nvidiaRuntime, IReadOnlyList<string> hostDevices, IReadOnlyDictionary<string, string> hostLibraries, string? nvidiaSmi)
    {
        if (gpus <= 0)
        {
            return;
        }

        if (nvidiaRuntime)
        {
            host.DeviceRequests =
            [
                new DeviceRequest { Driver = "nvidia", Count = gpus, Capabilities = [["gpu", "compute", "utility"]] },
            ];
            env.Add("NVIDIA_VISIBLE_DEVICES=all");
            env.Add("NVIDIA_DRIVER_CAPABILITIES=compute,utility");
            return;
        }

        // By number: ordinal order would put /dev/nvidia10 before /dev/nvidia2.
        var perGpu = hostDevices.Where(d => IsNumberedGpu(d)).OrderBy(GpuNumber).ThenBy(d => d, StringComparer.Ordinal).Take(gpus);
        var shared = hostDevices.Where(d => !IsNumberedGpu(d));
        host.Devices = perGpu.Concat(shared)
            .Select(d => new DeviceMapping { PathOnHost = d, PathInContainer = d, CgroupPermissions = "rwm" })
            .ToList();
        host.Binds ??= [];
        foreach (var (name, path) in hostLibraries.OrderBy(kv => kv.Key, StringComparer.Ordinal))
        {
            host.Binds.Add($"{path}:{LibDir}/{name}:ro");
        }

        if (nvidiaSmi is not null)
        {
            host.Binds.Add($"{nvidiaSmi}:{BinDir}/nvidia-smi:ro");
        }

        env.Add($"LD_LIBRARY_PATH={LibDir}");
        env.Add("CUDA_DEVICE_ORDER=PCI_BUS_ID");
    }

    private static int GpuNumber(string device) =>
        int.TryParse(device.AsSpan("/dev/nvidia".Length), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var n) ? n : int.MaxValue;

    private static bool IsNumberedGpu(string device) =>
        device.StartsWith("/dev/nvidia", StringComparison.Ordinal) && device.Length > "/dev/nvidia".Length && char.IsAsciiDigit(device["/dev/nvidia".Length]);

    /// <summary>The host's NVIDIA device nodes.</summary>
    public static IReadOnlyList<string> HostDevices() =>
        Directory.Exists("/dev")
            ? Directory.EnumerateFiles("/dev", "nvidia*").Where(d => !d.Contains("nvidia-caps", StringComparison.Ordinal)).Order(StringComparer.Ordinal).ToList()
            : [];

    /// <summary>Finds the driver libraries in the usual library folders.</summary>
    public static IReadOnlyDictionary<string, string> HostLibraries()
    {
        string[] dirs = ["/usr/lib/x86_64-linux-gnu", "/usr/lib64", "/usr/lib", "/usr/local/nvidia/lib64"];
        var found = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var lib in DriverLibraries)
        {
            var path = dirs.Select(d => Path.Combine(d, lib)).FirstOrDefault(File.Exists);
            if (path is not null)
            {
                found[lib] = path;
            }
        }

        return found;
    }
}
