using Dsvm.Core.Sizes;
using Dsvm.Core.Specs;

namespace Dsvm.Core.Workspaces;

/// <summary>The outcome of matching an environment's GPU mode, a size and the host.</summary>
public sealed record GpuDecision(bool UseGpu, bool CpuFallback, string? Notice);

/// <summary>Decides GPU use before anything starts: required-without-GPU is an error, optional falls back to CPU.</summary>
public static class GpuPolicy
{
    public static GpuDecision Decide(string environment, GpuMode mode, MachineSize size, int hostGpus)
    {
        if (size.Gpus == 0)
        {
            return mode == GpuMode.Required
                ? throw new WorkspaceStartException(WorkspaceFailure.Gpu,
                    $"environment '{environment}' requires a GPU (gpu: required) but size '{size.Name}' has none; pick a GPU size (e.g. gpu-small)")
                : new GpuDecision(false, false, null);
        }

        if (mode == GpuMode.None)
        {
            throw new WorkspaceStartException(WorkspaceFailure.Gpu,
                $"environment '{environment}' is CPU-only (gpu: none) and cannot use GPU size '{size.Name}'; use the gpu environment or a CPU size");
        }

        if (hostGpus >= size.Gpus)
        {
            return new GpuDecision(true, false, null);
        }

        var have = hostGpus == 0 ? "this host has no GPU" : $"this host has {hostGpus} GPU(s), size '{size.Name}' wants {size.Gpus}";
        return mode == GpuMode.Required
            ? throw new WorkspaceStartException(WorkspaceFailure.Gpu, $"environment '{environment}' requires a GPU, but {have}; nothing was started")
            : new GpuDecision(false, true, $"{have}: starting on CPU (environment '{environment}' has gpu: optional)");
    }
}
