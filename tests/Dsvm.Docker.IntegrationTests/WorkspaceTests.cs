using System.Net;
using System.Net.Http.Headers;
using Dsvm.Core;
using Dsvm.Core.Specs;
using Dsvm.Core.Workspaces;
using Dsvm.Testing;

namespace Dsvm.Docker.IntegrationTests;

/// <summary>Workspaces in real containers of the <c>minimal</c> image: lifecycle, limits, homes, security, recovery.</summary>
[Trait("Requires", "Docker")]
[Collection("docker")]
public sealed class WorkspaceTests
{
    private readonly WorkspaceStack _stack = new();

    private static async Task<HttpStatusCode> StatusAsync(Workspace w, string? token, string api = "api/status")
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, new Uri(new Uri(w.Endpoint!), w.BaseUrl.TrimStart('/') + api));
        if (token is not null)
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("token", token);
        }

        using var response = await WorkspaceStack.Client.SendAsync(request);
        return response.StatusCode;
    }

    [DockerFact]
    public async Task UpServesJupyterOnLoopbackOnlyBehindItsTokenAsAnUnprivilegedUser()
    {
        const string name = "secure";
        await _stack.CleanupAsync(name);
        try
        {
            var w = await _stack.UpAsync(name);

            Assert.Equal(WorkspaceState.Running, w.State);
            Assert.StartsWith("http://127.0.0.1:", w.Endpoint, StringComparison.Ordinal);
            Assert.Matches("^[0-9a-f]{64}$", w.Token);
            Assert.Equal(HttpStatusCode.OK, await StatusAsync(w, w.Token));
            Assert.Equal(HttpStatusCode.OK, await StatusAsync(w, w.Token, "api/contents"));
            Assert.Equal(HttpStatusCode.Forbidden, await StatusAsync(w, null, "api/contents"));
            Assert.Equal(HttpStatusCode.Forbidden, await StatusAsync(w, (w.Token[0] == '0' ? "1" : "0") + w.Token[1..], "api/contents"));

            var inspect = await WorkspaceStack.Docker.RunAsync(["inspect", "--format",
                "{{(index (index .HostConfig.PortBindings \"8888/tcp\") 0).HostIp}}|{{.Config.User}}|{{.HostConfig.CapDrop}}|{{.HostConfig.SecurityOpt}}|{{.HostConfig.PidsLimit}}|{{index .Config.Labels \"io.opendsvm.workspace\"}}",
                w.ContainerId!], default);
            Assert.Equal($"127.0.0.1|65530:65530|[ALL]|[no-new-privileges]|1024|{w.Id}", inspect.Stdout.Trim());
            Assert.Equal("uid=65530(dsvm) gid=65530(dsvm) groups=65530(dsvm)", await WorkspaceStack.ExecAsync(w, "id"));
            var status = await WorkspaceStack.ExecAsync(w, "grep", "-E", "^(CapEff|NoNewPrivs)", "/proc/self/status");
            Assert.Contains("CapEff:\t0000000000000000", status, StringComparison.Ordinal);
            Assert.Contains("NoNewPrivs:\t1", status, StringComparison.Ordinal);
            // The token reaches Jupyter through its environment, never its command line.
            Assert.DoesNotContain(w.Token, await WorkspaceStack.ExecAsync(w, "cat", "/proc/1/cmdline"), StringComparison.Ordinal);
        }
        finally
        {
            await _stack.CleanupAsync(name);
        }
    }

    /// <summary>Reads the container's own cgroup limits (v1 or v2).</summary>
    private static async Task<(long Memory, double Cpus, long Pids)> LimitsAsync(Workspace w)
    {
        var script = """
            if [ -f /sys/fs/cgroup/cpu.max ]; then
              echo "$(cat /sys/fs/cgroup/memory.max) $(cat /sys/fs/cgroup/cpu.max) $(cat /sys/fs/cgroup/pids.max)"
            else
              echo "$(cat /sys/fs/cgroup/memory/memory.limit_in_bytes) $(cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us) $(cat /sys/fs/cgroup/cpu/cpu.cfs_period_us) $(cat /sys/fs/cgroup/pids/pids.max)"
            fi
            """;
        var f = (await WorkspaceStack.ExecAsync(w, "sh", "-c", script)).Split(' ');
        var inv = System.Globalization.CultureInfo.InvariantCulture;
        return (long.Parse(f[0], inv), double.Parse(f[1], inv) / double.Parse(f[2], inv), long.Parse(f[3], inv));
    }

    [DockerFact]
    public async Task ResizeKeepsTheHomeAndTheEngineEnforcesEachSizesLimits()
    {
        const string name = "resize";
        await _stack.CleanupAsync(name);
        try
        {
            var small = await _stack.UpAsync(name, "small");
            Assert.Equal((2L << 30, 1.0, 1024L), await LimitsAsync(small));
            await WorkspaceStack.ExecAsync(small, "sh", "-c", "mkdir -p ~/work && echo '{\"cells\": []}' > ~/work/analysis.ipynb");

            var medium = await _stack.Manager.ResizeAsync(WorkspaceStack.Owner, name, "medium", GpuMode.None, null, default);

            Assert.Equal(WorkspaceState.Running, medium.State);
            Assert.Equal("medium", medium.Size);
            Assert.Equal(small.HomeVolume, medium.HomeVolume);
            Assert.NotEqual(small.ContainerId, medium.ContainerId);
            Assert.Equal((4L << 30, 2.0, 1024L), await LimitsAsync(medium));
            Assert.Equal("{\"cells\": []}", await WorkspaceStack.ExecAsync(medium, "cat", "/home/dsvm/work/analysis.ipynb"));
            Assert.Equal(HttpStatusCode.OK, await StatusAsync(medium, medium.Token));
        }
        finally
        {
            await _stack.CleanupAsync(name);
        }
    }

    [DockerFact]
    public async Task StopStartAndRmKeepTheHomeUnlessDeleteHomeIsAsked()
    {
        const string name = "homes";
        await _stack.CleanupAsync(name);
        try
        {
            var w = await _stack.UpAsync(name);
            await WorkspaceStack.ExecAsync(w, "sh", "-c", "echo kept > ~/data.txt");

            var stopped = await _stack.Manager.StopAsync(WorkspaceStack.Owner, name, null, default);
            Assert.Equal(WorkspaceState.Stopped, stopped.State);
            Assert.True(await _stack.Backend.HomeExistsAsync(w.HomeVolume, default));

            var started = await _stack.Manager.StartAsync(WorkspaceStack.Owner, name, GpuMode.None, null, default);
            Assert.Equal("kept", await WorkspaceStack.ExecAsync(started, "cat", "/home/dsvm/data.txt"));
            Assert.Equal(w.Token, started.Token);

            await _stack.Manager.DeleteAsync(WorkspaceStack.Owner, name, deleteHome: false, null, default);
            Assert.Null(await _stack.Store.FindAsync(WorkspaceStack.Owner, name, default));
            Assert.True(await _stack.Backend.HomeExistsAsync(w.HomeVolume, default));

            // Same name again: the kept home comes back with its files.
            var again = await _stack.UpAsync(name);
            Assert.Equal("kept", await WorkspaceStack.ExecAsync(again, "cat", "/home/dsvm/data.txt"));

            await _stack.Manager.DeleteAsync(WorkspaceStack.Owner, name, deleteHome: true, null, default);
            Assert.False(await _stack.Backend.HomeExistsAsync(w.HomeVolume, default));
        }
        finally
        {
            await _stack.CleanupAsync(name);
        }
    }

    [DockerFact]
    public async Task ReconcileShowsAContainerRemovedOutsideAsStoppedAndReportsUnknownOnes()
    {
        const string name = "drift";
        await _stack.CleanupAsync(name);
        var (_, record) = await BuiltEnvironment.GetAsync("minimal");
        const string stray = "dsvm-it-stray";
        await WorkspaceStack.Docker.RunAsync(["rm", "-f", stray], default);
        try
        {
            var w = await _stack.UpAsync(name);
            await WorkspaceStack.Docker.RunAsync(["rm", "-f", w.ContainerId!], default);
            var strayRun = await WorkspaceStack.Docker.RunAsync(
                ["run", "-d", "--name", stray, "--label", "io.opendsvm.managed=true", "--label", "io.opendsvm.workspace=ws-stray",
                 "--entrypoint", "sleep", record.Image, "300"], default);
            Assert.True(strayRun.Ok, strayRun.Stderr);

            var report = await _stack.Manager.ReconcileAsync(default);

            Assert.Contains(report.Repaired, r => r.Contains($"{WorkspaceStack.Owner}/{name}: Running -> Stopped", StringComparison.Ordinal));
            var after = await _stack.Store.FindAsync(WorkspaceStack.Owner, name, default);
            Assert.Equal(WorkspaceState.Stopped, after!.State);
            Assert.Contains("found stopped", after.LastError, StringComparison.Ordinal);
            Assert.Contains(report.Unknown, u => u.Name == stray && u.WorkspaceId == "ws-stray");
            // Unknown resources are reported, never removed.
            Assert.True((await WorkspaceStack.Docker.RunAsync(["inspect", stray], default)).Ok);

            var restarted = await _stack.Manager.StartAsync(WorkspaceStack.Owner, name, GpuMode.None, null, default);
            Assert.Equal(WorkspaceState.Running, restarted.State);
        }
        finally
        {
            await WorkspaceStack.Docker.RunAsync(["rm", "-f", stray], default);
            await _stack.CleanupAsync(name);
        }
    }

    [DockerFact]
    public async Task AServerThatCrashesFailsFastWithItsLastLogLines()
    {
        const string name = "crash";
        await _stack.CleanupAsync(name);
        var (_, record) = await BuiltEnvironment.GetAsync("minimal");
        const string broken = "dsvm-test/crashing:latest";
        var context = new MemoryStream();
        var ctx = new Dsvm.Images.BuildContext();
        ctx.Add("Dockerfile", $"FROM {record.Image}\nENTRYPOINT [\"sh\", \"-c\", \"echo boom-marker-42 >&2; exit 3\"]\n");
        ctx.WriteTar(context);
        context.Position = 0;
        Assert.True((await WorkspaceStack.Docker.RunAsync(["build", "-t", broken, "-"], default, context)).Ok);
        try
        {
            var started = DateTime.UtcNow;
            var ex = await Assert.ThrowsAsync<WorkspaceStartException>(() => _stack.UpAsync(name, image: broken));

            Assert.Equal(WorkspaceFailure.Backend, ex.Reason);
            Assert.Contains("boom-marker-42", ex.Message, StringComparison.Ordinal);
            Assert.True(DateTime.UtcNow - started < TimeSpan.FromSeconds(60), "a crash is noticed before the start timeout");
            var w = await _stack.Store.FindAsync(WorkspaceStack.Owner, name, default);
            Assert.Equal(WorkspaceState.Failed, w!.State);
            Assert.Contains("boom-marker-42", w.LastError, StringComparison.Ordinal);
            // The failed container is cleaned up; the home stays.
            Assert.False((await WorkspaceStack.Docker.RunAsync(["inspect", $"dsvm-{WorkspaceStack.Owner}-{name}"], default)).Ok);
            Assert.True(await _stack.Backend.HomeExistsAsync(w.HomeVolume, default));
        }
        finally
        {
            await _stack.CleanupAsync(name);
            await WorkspaceStack.Docker.RunAsync(["rmi", broken], default);
        }
    }

    [DockerFact]
    public async Task GpuOptionalFallsBackToCpuAndGpuRequiredFailsBeforeAnythingStarts()
    {
        const string name = "gpu";
        await _stack.CleanupAsync(name);
        var hostGpus = (await new NvidiaGpuDetector().DetectAsync(default)).Count;
        try
        {
            if (hostGpus > 0)
            {
                return; // This check is about hosts without a GPU; the device checks are documented in docs/gpu.md.
            }

            var ex = await Assert.ThrowsAsync<WorkspaceStartException>(() => _stack.UpAsync(name, "gpu-small", GpuMode.Required));
            Assert.Equal(WorkspaceFailure.Gpu, ex.Reason);
            Assert.Contains("requires a GPU", ex.Message, StringComparison.Ordinal);
            Assert.Null(await _stack.Store.FindAsync(WorkspaceStack.Owner, name, default));
            Assert.False((await WorkspaceStack.Docker.RunAsync(["inspect", $"dsvm-{WorkspaceStack.Owner}-{name}"], default)).Ok);
            Assert.False(await _stack.Backend.HomeExistsAsync($"dsvm-home-{WorkspaceStack.Owner}-{name}", default));

            var w = await _stack.UpAsync(name, "gpu-small", GpuMode.Optional);

            Assert.Equal(WorkspaceState.Running, w.State);
            Assert.True(w.CpuFallback);
            Assert.False(w.GpuEnabled);
            Assert.Equal("CUDA_VISIBLE_DEVICES=", await WorkspaceStack.ExecAsync(w, "sh", "-c", "env | grep ^CUDA_VISIBLE_DEVICES="));
        }
        finally
        {
            await _stack.CleanupAsync(name);
        }
    }

    [DockerFact]
    public async Task TwoConcurrentCommandsOnOneWorkspaceMakeOneWorkspace()
    {
        const string name = "race";
        await _stack.CleanupAsync(name);
        try
        {
            // Two stacks stand for two dsvm processes sharing the database and lock files.
            var other = new WorkspaceStack();
            var a = _stack.UpAsync(name);
            var b = other.UpAsync(name);
            var results = await Task.WhenAll(a, b);

            Assert.Equal(results[0].Id, results[1].Id);
            Assert.Single(await _stack.Store.ListAsync(WorkspaceStack.Owner, default), w => w.Name == name);
            var containers = await WorkspaceStack.Docker.RunAsync(["ps", "-aq", "--filter", $"label=io.opendsvm.workspace={results[0].Id}"], default);
            Assert.Single(containers.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        }
        finally
        {
            await _stack.CleanupAsync(name);
        }
    }

    [DockerFact]
    public async Task ACommandKilledMidStartLeavesARecoverableWorkspace()
    {
        const string name = "killed";
        await _stack.CleanupAsync(name);
        var (_, record) = await BuiltEnvironment.GetAsync("minimal");
        try
        {
            // Cancel (as Ctrl-C would) once the container runs and the server is being waited for.
            using var cts = new CancellationTokenSource();
            var up = _stack.Manager.UpAsync(new CreateWorkspaceRequest
            {
                Name = name, Owner = WorkspaceStack.Owner, OwnerId = WorkspaceIds.LocalOwnerId, Environment = "minimal", Image = record.Image, GpuMode = GpuMode.None, Size = "small",
            }, new CancelOn("waiting for Jupyter", cts), cts.Token);
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => up);

            var listed = (await _stack.Manager.ListAsync(WorkspaceStack.Owner, default)).Single(w => w.Name == name);
            Assert.Contains(listed.State, new[] { WorkspaceState.Starting, WorkspaceState.Running });

            var recovered = await _stack.Manager.StartAsync(WorkspaceStack.Owner, name, GpuMode.None, null, default);
            Assert.Equal(WorkspaceState.Running, recovered.State);
            Assert.Equal(HttpStatusCode.OK, await StatusAsync(recovered, recovered.Token));
        }
        finally
        {
            await _stack.CleanupAsync(name);
        }
    }

    [DockerFact]
    public async Task BadInputIsRefusedWithAClearErrorAndNothingIsCreated()
    {
        var unknownSize = await Assert.ThrowsAsync<NotFoundException>(() => _stack.UpAsync("bad-size", "huge"));
        Assert.Contains("unknown size 'huge'", unknownSize.Message, StringComparison.Ordinal);

        var badName = await Assert.ThrowsAsync<UsageException>(() => _stack.UpAsync("Bad_Name"));
        Assert.Contains("'Bad_Name' is not a valid workspace name", badName.Message, StringComparison.Ordinal);

        var tooBig = await Assert.ThrowsAsync<WorkspaceStartException>(() => _stack.UpAsync("too-big", "xlarge"));
        Assert.Equal(WorkspaceFailure.Capacity, tooBig.Reason);

        var unknownEnv = Assert.Throws<NotFoundException>(() => Dsvm.Images.EnvironmentLocator.Resolve("no-such-env"));
        Assert.Contains("unknown environment 'no-such-env'", unknownEnv.Message, StringComparison.Ordinal);

        var all = await _stack.Store.ListAsync(WorkspaceStack.Owner, default);
        Assert.DoesNotContain(all, w => w.Name is "bad-size" or "too-big");
        var missing = await Assert.ThrowsAsync<NotFoundException>(() => _stack.Manager.StopAsync(WorkspaceStack.Owner, "never-made", null, default));
        Assert.Contains("no workspace 'never-made'", missing.Message, StringComparison.Ordinal);
    }

    private sealed class CancelOn(string prefix, CancellationTokenSource cts) : IProgress<WorkspaceProgress>
    {
        public void Report(WorkspaceProgress value)
        {
            if (value.Message.StartsWith(prefix, StringComparison.Ordinal))
            {
                cts.Cancel();
            }
        }
    }
}
