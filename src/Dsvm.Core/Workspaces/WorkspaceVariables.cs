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

    /// <summary>The thread variables the image's entrypoint (<c>dsvm-start</c>) sets from <see cref="Cpus"/>.</summary>
    public static readonly IReadOnlyList<string> ThreadVariables =
        ["OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS", "NUMBA_NUM_THREADS", "MC_CORES"];

    /// <summary>
    /// The same defaulting as <c>dsvm-start</c>, for a process started beside the server (<c>dsvm exec</c>, the
    /// hub's exec): it inherits the container's variables (<see cref="Cpus"/>, the spec's <c>env</c>) but not what
    /// the entrypoint exported: the thread variables, pip's PEP 668 opt-out for the user and <c>~/.local/bin</c>
    /// first on <c>PATH</c> (so <c>dsvm exec NAME pip install X</c> works like a terminal in JupyterLab). A variable
    /// already set is kept. Works with images built before this existed.
    /// </summary>
    public static readonly string ExecPrelude =
        "cpus=\"${DSVM_CPUS:-}\"; case \"$cpus\" in ''|0*|*[!0-9]*) cpus=\"$(nproc 2>/dev/null || echo 1)\" ;; esac; "
        + "for v in " + string.Join(' ', ThreadVariables) + "; do eval \"[ -n \\\"\\${$v:-}\\\" ] || export $v=$cpus\"; done; "
        + "export PIP_BREAK_SYSTEM_PACKAGES=\"${PIP_BREAK_SYSTEM_PACKAGES:-1}\"; "
        + "case \":$PATH:\" in *\":$HOME/.local/bin:\"*) ;; *) export PATH=\"$HOME/.local/bin:$PATH\" ;; esac; "
        + "exec \"$@\"";

    /// <summary>
    /// <paramref name="command"/> run through <see cref="ExecPrelude"/>: the arguments reach it as positional
    /// parameters, never parsed by the shell.
    /// </summary>
    public static IReadOnlyList<string> WrapExec(IEnumerable<string> command) =>
        ["/bin/sh", "-c", ExecPrelude, "dsvm-exec", .. command];
}
