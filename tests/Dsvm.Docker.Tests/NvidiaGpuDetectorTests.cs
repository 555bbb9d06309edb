namespace Dsvm.Docker.Tests;

public sealed class NvidiaGpuDetectorTests
{
    [Fact]
    public void Parse_TwoGpus()
    {
        const string csv = "0, NVIDIA H100 80GB HBM3, GPU-6b1c0a4e-0f3a-5a4e-8a53-2f0e3c1d9b01, 81559, 550.163.01\n"
            + "1, NVIDIA H100 80GB HBM3, GPU-0c4bd9a3-7e2f-4c55-9d7e-5a1b2c3d4e5f, 81559, 550.163.01\n";

        var gpus = NvidiaGpuDetector.Parse(csv);

        Assert.Equal(2, gpus.Count);
        Assert.Equal(0, gpus[0].Index);
        Assert.Equal("NVIDIA H100 80GB HBM3", gpus[0].Name);
        Assert.Equal("GPU-6b1c0a4e-0f3a-5a4e-8a53-2f0e3c1d9b01", gpus[0].Uuid);
        Assert.Equal(81559, gpus[0].MemoryMiB);
        Assert.Equal("550.163.01", gpus[0].Driver);
        Assert.Equal(1, gpus[1].Index);
        Assert.Equal("GPU-0c4bd9a3-7e2f-4c55-9d7e-5a1b2c3d4e5f", gpus[1].Uuid);
    }

    [Fact]
    public void Parse_WindowsLineEndingsAndBlankLines()
    {
        var gpus = NvidiaGpuDetector.Parse("\r\n0, Tesla T4, GPU-a, 15360, 535.54.03\r\n\r\n");

        var gpu = Assert.Single(gpus);
        Assert.Equal("Tesla T4", gpu.Name);
        Assert.Equal("535.54.03", gpu.Driver);
    }

    [Theory]
    [InlineData("")]
    [InlineData("   \n\n")]
    public void Parse_EmptyOutput_IsNoGpu(string csv) => Assert.Empty(NvidiaGpuDetector.Parse(csv));

    [Fact]
    public void Parse_SkipsJunkLines()
    {
        const string csv = """
            NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.
            index, name, uuid, memory.total [MiB], driver_version
            0, NVIDIA A100-SXM4-40GB, GPU-abc, 40960, 535.104.05
            1, too, few
            x, NVIDIA A100, GPU-def, 40960, 535.104.05
            1, NVIDIA A100-SXM4-40GB, GPU-ghi, [N/A], 535.104.05
            """;

        var gpus = NvidiaGpuDetector.Parse(csv);

        Assert.Equal([0, 1], gpus.Select(g => g.Index));
        Assert.Equal("GPU-abc", gpus[0].Uuid);
        // An unreadable memory size is 0, not a failure.
        Assert.Equal(0, gpus[1].MemoryMiB);
    }

    [Fact]
    public async Task DetectAsync_MissingExecutable_IsNoGpu()
    {
        var detector = new NvidiaGpuDetector("/nonexistent/dsvm-tests/nvidia-smi");

        var gpus = await detector.DetectAsync(CancellationToken.None);

        Assert.Empty(gpus);
        // Cached: asking again does not fail either.
        Assert.Empty(await detector.DetectAsync(CancellationToken.None));
    }

    [Fact]
    public async Task DetectAsync_FailingExecutable_IsNoGpu()
    {
        // `false` exists everywhere on Linux and exits 1, like nvidia-smi without a driver.
        if (!File.Exists("/bin/false") && !File.Exists("/usr/bin/false"))
        {
            return;
        }

        var gpus = await new NvidiaGpuDetector("false").DetectAsync(CancellationToken.None);

        Assert.Empty(gpus);
    }
}
