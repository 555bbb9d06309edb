using System.Globalization;
using Dsvm.Core.Sizes;

namespace Dsvm.Core.Workspaces;

/// <summary>
/// Variables every backend passes to a workspace's server, derived from the request in one place.
/// <c>DSVM_CPUS</c> is the size's vCPUs rounded down (at least 1): the image's entrypoint sizes the thread pools of
/// OpenMP, OpenBLAS, MKL, numexpr, numba and R's parallel (<c>MC_CORES</c>) from it, unless the environment spec or
/// the user already set them (docs/environments.md).
/// </summary>
public static class WorkspaceVariables
{
    public const string Cpus = "DSVM_CPUS";

    /// <summary>The thread count for a size: its vCPUs rounded down, at least 1.</summary>
    public static int ThreadsFor(MachineSize size) => Math.Max(1, (int)Math.Floor(size.Vcpus));

    public static IReadOnlyList<KeyValuePair<string, string>> For(MachineSize size) =>
        [new(Cpus, ThreadsFor(size).ToString(CultureInfo.InvariantCulture))];
}
