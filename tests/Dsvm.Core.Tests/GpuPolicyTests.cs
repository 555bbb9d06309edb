using Dsvm.Core.Sizes;
using Dsvm.Core.Specs;
using Dsvm.Core.Workspaces;

namespace Dsvm.Core.Tests;

public sealed class GpuPolicyTests
{
    private static readonly MachineSize Cpu = new("medium", 2, 4, 0, SizeClass.General);
    private static readonly MachineSize OneGpu = new("gpu-small", 2, 8, 1, SizeClass.Gpu);
    private static readonly MachineSize TwoGpus = new("gpu-large", 8, 64, 2, SizeClass.Gpu);

    private static WorkspaceStartException Refused(GpuMode mode, MachineSize size, int hostGpus)
    {
        var ex = Assert.Throws<WorkspaceStartException>(() => GpuPolicy.Decide("demo", mode, size, hostGpus));
        Assert.Equal(WorkspaceFailure.Gpu, ex.Reason);
        Assert.Contains("demo", ex.Message, StringComparison.Ordinal);
        return ex;
    }

    // ---- CPU sizes ----

    [Theory]
    [InlineData(GpuMode.None, 0)]
    [InlineData(GpuMode.None, 2)]
    [InlineData(GpuMode.Optional, 0)]
    [InlineData(GpuMode.Optional, 2)]
    public void CpuSize_NoneOrOptional_RunsOnCpuWithoutNotice(GpuMode mode, int hostGpus)
    {
        var d = GpuPolicy.Decide("demo", mode, Cpu, hostGpus);

        Assert.Equal(new GpuDecision(false, false, null), d);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(4)]
    public void CpuSize_Required_IsAGpuError(int hostGpus)
    {
        var ex = Refused(GpuMode.Required, Cpu, hostGpus);

        Assert.Contains("medium", ex.Message, StringComparison.Ordinal);
        Assert.Contains("gpu-small", ex.Message, StringComparison.Ordinal);
    }

    // ---- GPU sizes ----

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(4)]
    public void GpuSize_None_IsAGpuError(int hostGpus)
    {
        var ex = Refused(GpuMode.None, OneGpu, hostGpus);

        Assert.Contains("gpu-small", ex.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(GpuMode.Optional, 1, 1)]
    [InlineData(GpuMode.Optional, 1, 4)]
    [InlineData(GpuMode.Optional, 2, 2)]
    [InlineData(GpuMode.Required, 1, 1)]
    [InlineData(GpuMode.Required, 1, 8)]
    [InlineData(GpuMode.Required, 2, 2)]
    public void GpuSize_EnoughHostGpus_UsesGpu(GpuMode mode, int sizeGpus, int hostGpus)
    {
        var d = GpuPolicy.Decide("demo", mode, sizeGpus == 1 ? OneGpu : TwoGpus, hostGpus);

        Assert.Equal(new GpuDecision(true, false, null), d);
    }

    [Fact]
    public void GpuSize_Optional_NoHostGpu_FallsBackToCpuWithNotice()
    {
        var d = GpuPolicy.Decide("demo", GpuMode.Optional, OneGpu, 0);

        Assert.False(d.UseGpu);
        Assert.True(d.CpuFallback);
        Assert.NotNull(d.Notice);
        Assert.Contains("no GPU", d.Notice, StringComparison.Ordinal);
        Assert.Contains("CPU", d.Notice, StringComparison.Ordinal);
    }

    [Fact]
    public void GpuSize_Optional_TooFewHostGpus_FallsBackToCpuWithNotice()
    {
        var d = GpuPolicy.Decide("demo", GpuMode.Optional, TwoGpus, 1);

        Assert.False(d.UseGpu);
        Assert.True(d.CpuFallback);
        Assert.NotNull(d.Notice);
        Assert.Contains("1 GPU(s)", d.Notice, StringComparison.Ordinal);
        Assert.Contains("wants 2", d.Notice, StringComparison.Ordinal);
    }

    [Fact]
    public void GpuSize_Required_NoHostGpu_IsAGpuError()
    {
        var ex = Refused(GpuMode.Required, OneGpu, 0);

        Assert.Contains("no GPU", ex.Message, StringComparison.Ordinal);
        Assert.Contains("nothing was started", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void GpuSize_Required_TooFewHostGpus_IsAGpuError()
    {
        var ex = Refused(GpuMode.Required, TwoGpus, 1);

        Assert.Contains("wants 2", ex.Message, StringComparison.Ordinal);
    }
}
