using Docker.DotNet.Models;

namespace Dsvm.Docker.Tests;

public sealed class GpuMappingTests
{
    private static readonly string[] Devices =
    [
        "/dev/nvidia-modeset", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools", "/dev/nvidia0", "/dev/nvidia1", "/dev/nvidia2",
        "/dev/nvidia3", "/dev/nvidiactl",
    ];

    private static readonly Dictionary<string, string> Libraries = new()
    {
        ["libcuda.so.1"] = "/usr/lib/x86_64-linux-gnu/libcuda.so.1",
        ["libnvidia-ml.so.1"] = "/usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1",
    };

    private static (HostConfig Host, List<string> Env) Apply(int gpus, bool nvidiaRuntime, IReadOnlyList<string>? devices = null, string? smi = "/usr/bin/nvidia-smi")
    {
        var host = new HostConfig();
        var env = new List<string> { "JUPYTER_TOKEN=x" };
        GpuMapping.Apply(host, env, gpus, nvidiaRuntime, devices ?? Devices, Libraries, smi);
        return (host, env);
    }

    private static List<string> Mapped(HostConfig host) => host.Devices.Select(d => d.PathOnHost).ToList();

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    public void NvidiaRuntime_IsOneDeviceRequest(int gpus)
    {
        var (host, env) = Apply(gpus, nvidiaRuntime: true);

        var request = Assert.Single(host.DeviceRequests);
        Assert.Equal("nvidia", request.Driver);
        Assert.Equal(gpus, request.Count);
        Assert.Contains("gpu", Assert.Single(request.Capabilities));
        Assert.True(host.Devices is null || host.Devices.Count == 0);
        Assert.True(host.Binds is null || host.Binds.Count == 0);
        Assert.Contains("NVIDIA_VISIBLE_DEVICES=all", env);
        Assert.Contains(env, e => e.StartsWith("NVIDIA_DRIVER_CAPABILITIES=", StringComparison.Ordinal) && e.Contains("compute", StringComparison.Ordinal));
    }

    [Fact]
    public void WithoutRuntime_MapsTheFirstNGpusPlusTheSharedDevices()
    {
        var (host, _) = Apply(2, nvidiaRuntime: false);

        var mapped = Mapped(host);
        Assert.Contains("/dev/nvidia0", mapped);
        Assert.Contains("/dev/nvidia1", mapped);
        Assert.DoesNotContain("/dev/nvidia2", mapped);
        Assert.DoesNotContain("/dev/nvidia3", mapped);
        Assert.Contains("/dev/nvidiactl", mapped);
        Assert.Contains("/dev/nvidia-uvm", mapped);
        Assert.Contains("/dev/nvidia-uvm-tools", mapped);
        Assert.Contains("/dev/nvidia-modeset", mapped);
        Assert.Equal(6, mapped.Count);
        Assert.All(host.Devices, d =>
        {
            Assert.Equal(d.PathOnHost, d.PathInContainer);
            Assert.Equal("rwm", d.CgroupPermissions);
        });
        Assert.True(host.DeviceRequests is null || host.DeviceRequests.Count == 0);
    }

    [Fact]
    public void WithoutRuntime_OneGpu_IsNvidia0()
    {
        var (host, _) = Apply(1, nvidiaRuntime: false);

        var mapped = Mapped(host);
        Assert.Single(mapped, d => d.StartsWith("/dev/nvidia", StringComparison.Ordinal) && char.IsAsciiDigit(d[^1]));
        Assert.Contains("/dev/nvidia0", mapped);
    }

    [Fact]
    public void WithoutRuntime_GpusAreOrderedByNumberNotByText()
    {
        string[] devices = ["/dev/nvidia10", "/dev/nvidia11", "/dev/nvidia2", "/dev/nvidia1", "/dev/nvidia0", "/dev/nvidiactl"];

        var (host, _) = Apply(3, nvidiaRuntime: false, devices);

        Assert.Equal(["/dev/nvidia0", "/dev/nvidia1", "/dev/nvidia2", "/dev/nvidiactl"], Mapped(host));
    }

    [Fact]
    public void WithoutRuntime_BindsDriverLibrariesAndNvidiaSmiReadOnly()
    {
        var (host, env) = Apply(1, nvidiaRuntime: false);

        Assert.Equal(
            [
                "/usr/lib/x86_64-linux-gnu/libcuda.so.1:/usr/local/nvidia/lib64/libcuda.so.1:ro",
                "/usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1:/usr/local/nvidia/lib64/libnvidia-ml.so.1:ro",
                "/usr/bin/nvidia-smi:/usr/local/nvidia/bin/nvidia-smi:ro",
            ],
            host.Binds);
        Assert.Contains("LD_LIBRARY_PATH=/usr/local/nvidia/lib64", env);
        Assert.Contains("CUDA_DEVICE_ORDER=PCI_BUS_ID", env);
        Assert.DoesNotContain(env, e => e.StartsWith("CUDA_VISIBLE_DEVICES=", StringComparison.Ordinal));
    }

    [Fact]
    public void WithoutRuntime_NoNvidiaSmi_BindsOnlyTheLibraries()
    {
        var (host, _) = Apply(1, nvidiaRuntime: false, smi: null);

        Assert.Equal(2, host.Binds.Count);
        Assert.All(host.Binds, b => Assert.Contains(":/usr/local/nvidia/lib64/", b, StringComparison.Ordinal));
    }

    [Fact]
    public void WithoutRuntime_KeepsExistingBinds()
    {
        var host = new HostConfig { Binds = ["/data:/data:ro"] };
        var env = new List<string>();

        GpuMapping.Apply(host, env, 1, false, Devices, Libraries, null);

        Assert.Equal("/data:/data:ro", host.Binds[0]);
        Assert.Equal(3, host.Binds.Count);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void ZeroGpus_ChangesNothing(bool nvidiaRuntime)
    {
        var (host, env) = Apply(0, nvidiaRuntime);

        Assert.Null(host.DeviceRequests);
        Assert.Null(host.Devices);
        Assert.Null(host.Binds);
        Assert.Equal(["JUPYTER_TOKEN=x"], env);
    }
}
