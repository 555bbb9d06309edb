using System.Diagnostics;
using Dsvm.Core;
using Dsvm.Core.Workspaces;
using Dsvm.Testing;

namespace Dsvm.Docker.IntegrationTests;

/// <summary>The Docker backend's exec (what the hub's POST …/exec runs): user, output, exit code, cap and timeout.</summary>
[Trait("Requires", "Docker")]
[Collection("docker")]
public sealed class WorkspaceExecTests
{
    private readonly WorkspaceStack _stack = new();

    private Task<WorkspaceExecResult> ExecAsync(Workspace w, string[] command, TimeSpan? timeout = null, int limit = 1024 * 1024) =>
        _stack.Backend.ExecAsync(w.Handle, new WorkspaceExecRequest { Command = command, Timeout = timeout ?? TimeSpan.FromSeconds(30), OutputLimitBytes = limit }, default);

    [DockerFact]
    public async Task ExecRunsAsTheWorkspaceUserInItsHomeWithOutputExitCodeCapAndTimeout()
    {
        const string name = "exec";
        await _stack.CleanupAsync(name);
        try
        {
            var w = await _stack.UpAsync(name);

            var id = await ExecAsync(w, ["sh", "-c", "id -u; pwd"]);
            Assert.Equal(0, id.ExitCode);
            Assert.Equal("65530\n/home/dsvm\n", id.Stdout);
            Assert.False(id.Truncated || id.TimedOut);

            var failing = await ExecAsync(w, ["sh", "-c", "echo out; echo err >&2; exit 3"]);
            Assert.Equal(3, failing.ExitCode);
            Assert.Equal("out\n", failing.Stdout);
            Assert.Equal("err\n", failing.Stderr);

            var big = await ExecAsync(w, ["sh", "-c", "head -c 300000 /dev/zero | tr '\\0' x"], limit: 1000);
            Assert.Equal(0, big.ExitCode);
            Assert.True(big.Truncated);
            Assert.Equal(new string('x', 1000), big.Stdout);

            var clock = Stopwatch.StartNew();
            var slow = await ExecAsync(w, ["sleep", "60"], timeout: TimeSpan.FromSeconds(2));
            Assert.True(slow.TimedOut);
            Assert.Equal(124, slow.ExitCode);
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(20), $"took {clock.Elapsed}");

            var missing = await ExecAsync(w, ["no-such-program"]);
            Assert.Equal(127, missing.ExitCode);

            await _stack.Manager.StopAsync(WorkspaceStack.Owner, name, null, default);
            await Assert.ThrowsAsync<ConflictException>(() => ExecAsync(w, ["id"]));
        }
        finally
        {
            await _stack.CleanupAsync(name);
        }
    }

    [DockerFact]
    public async Task ExecGetsTheThreadVariablesOfTheSizeLikeTheServerDoes()
    {
        const string name = "exec-threads";
        await _stack.CleanupAsync(name);
        try
        {
            var w = await _stack.UpAsync(name, size: "small");

            var threads = await ExecAsync(w, ["sh", "-c", "echo $DSVM_CPUS $OMP_NUM_THREADS $OPENBLAS_NUM_THREADS $MKL_NUM_THREADS $NUMEXPR_NUM_THREADS $NUMBA_NUM_THREADS $MC_CORES"]);
            Assert.Equal(0, threads.ExitCode);
            Assert.Equal("1 1 1 1 1 1 1\n", threads.Stdout);

            var arguments = await ExecAsync(w, ["printf", "%s|", "a b", "$HOME", "'q'"]);
            Assert.Equal("a b|$HOME|'q'|", arguments.Stdout);

            // pip as in a JupyterLab terminal: the PEP 668 guard lifted for the user, ~/.local/bin first on PATH.
            var pip = await ExecAsync(w, ["sh", "-c", "echo $PIP_BREAK_SYSTEM_PACKAGES; echo $PATH"]);
            Assert.Equal(0, pip.ExitCode);
            var lines = pip.Stdout.Split('\n');
            Assert.Equal("1", lines[0]);
            Assert.StartsWith("/home/dsvm/.local/bin:", lines[1], StringComparison.Ordinal);
        }
        finally
        {
            await _stack.CleanupAsync(name);
        }
    }
}
