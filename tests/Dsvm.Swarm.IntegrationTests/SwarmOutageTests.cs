using System.Diagnostics;
using Dsvm.Core;
using Dsvm.Core.Sizes;
using Dsvm.Core.Workspaces;
using Dsvm.Data;
using Dsvm.Testing;

namespace Dsvm.Swarm.IntegrationTests;

/// <summary>
/// Issue 12 on a real swarm: the manager's engine goes away (its socket gone: what a client sees of a dockerd that is
/// down) and hangs (SIGSTOP, shorter than a heartbeat so the swarm itself does not notice), then comes back. Every
/// call is one not-ready line naming the manager; the workspace keeps running on its node; a stop that could not
/// reach the manager stays Stopping with why; once the manager answers, the next look finishes the stop, the home is
/// kept and the workspace starts again.
/// </summary>
[Collection("swarm")]
[Trait("Requires", "Docker")]
public sealed class SwarmOutageTests(SwarmFixture fx)
{
    private const string Socket = "/run/dsvm-swarm/n1/docker.sock";
    private const string ManagerPid = "/run/dsvm-swarm/n1/dockerd.pid";

    [SwarmFact]
    public async Task The_manager_unreachable_or_hung_is_one_line_naming_it_and_everything_works_once_it_answers()
    {
        const string name = "outage";
        var w = await fx.UpAsync(name);
        Assert.True(await SwarmFixture.AnswersAsync(w));
        // A manager of its own over the same records, whose backend waits 2 s for an answer (default: 30 s).
        using var backend = new SwarmWorkspaceBackend(SwarmFixture.LabOptions with { RequestTimeout = TimeSpan.FromSeconds(2) });
        var manager = SwarmFixture.NewManager(backend, fx.Store, fx.Paths,
            new WorkspaceOptions { StartTimeout = TimeSpan.FromSeconds(300), PollInterval = TimeSpan.FromMilliseconds(200) });
        var away = Socket + ".away";
        try
        {
            // Down: the socket is gone.
            File.Move(Socket, away);
            // The client's own fault, which the CLI and the hub turn into one line naming the Docker engine (Output, ErrorMapping).
            var list = await Assert.ThrowsAnyAsync<Exception>(() => manager.ListAsync(SwarmFixture.Owner, default));
            AssertUnreachableEngine(list);
            var stop = await Assert.ThrowsAnyAsync<Exception>(() => manager.StopAsync(SwarmFixture.Owner, name, null, default));
            AssertUnreachableEngine(stop);
            var record = (await fx.Store.FindAsync(SwarmFixture.Owner, name, default))!;
            Assert.Equal(WorkspaceState.Stopping, record.State);
            Assert.StartsWith("stop not finished: ", record.LastError, StringComparison.Ordinal);
            Assert.True(await SwarmFixture.AnswersAsync(w), "the workspace stopped answering while the manager was away");
            File.Move(away, Socket);

            // Hung: the engine accepts and does not answer.
            var pid = int.Parse(File.ReadAllText(ManagerPid).Trim(), System.Globalization.CultureInfo.InvariantCulture);
            var sw = Stopwatch.StartNew();
            Signal("STOP", pid);
            try
            {
                var hung = await Assert.ThrowsAnyAsync<DsvmException>(() => manager.ListAsync(SwarmFixture.Owner, default));
                AssertOneLineNamingTheManager(hung);
                Assert.Contains("did not answer within 2 s", hung.Message, StringComparison.Ordinal);
            }
            finally
            {
                Signal("CONT", pid);
            }

            Assert.True(sw.Elapsed < TimeSpan.FromSeconds(5), $"the manager was frozen for {sw.Elapsed}, longer than a swarm heartbeat");
            Assert.True(await SwarmFixture.AnswersAsync(w), "the workspace stopped answering while the manager was frozen");

            // Back: the first look finishes the stop; the home is kept on its node; the workspace starts again there.
            var listed = Assert.Single(await manager.ListAsync(SwarmFixture.Owner, default), x => x.Name == name);
            Assert.Equal(WorkspaceState.Stopped, listed.State);
            Assert.Equal("stop finished after an interruption", listed.LastError);
            Assert.False((await backend.GetStatusAsync(w.Handle, default)).Exists);
            Assert.True(await backend.HomeExistsAsync(w.HomeVolume, default));
            var again = await manager.StartAsync(SwarmFixture.Owner, name, Core.Specs.GpuMode.None, null, default);
            Assert.Equal(WorkspaceState.Running, again.State);
            Assert.Equal(SwarmFixture.NodeOf(w), SwarmFixture.NodeOf(again));
        }
        finally
        {
            if (File.Exists(away))
            {
                File.Move(away, Socket);
            }

            await fx.Manager.DeleteAsync(SwarmFixture.Owner, name, deleteHome: true, null, default);
        }
    }

    private static void AssertUnreachableEngine(Exception ex)
    {
        Assert.True(EngineFaults.EngineOf(ex) == "Docker" && EngineFaults.IsUnreachable(ex), ex.ToString());
        Assert.Equal("the Docker engine is not reachable", EngineFaults.ForUsers(ex));
    }

    private static void AssertOneLineNamingTheManager(DsvmException ex)
    {
        Assert.DoesNotContain('\n', ex.Message);
        Assert.Contains(SwarmLab.ManagerEndpoint.ToString(), ex.Message, StringComparison.Ordinal);
    }

    private static void Signal(string signal, int pid)
    {
        using var kill = Process.Start("kill", ["-" + signal, pid.ToString(System.Globalization.CultureInfo.InvariantCulture)])!;
        kill.WaitForExit();
        Assert.Equal(0, kill.ExitCode);
    }
}
