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
/// kept and the workspace starts again. And past what the swarm tolerates: the manager frozen longer than its
/// heartbeats, its engine restarted.
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

    /// <summary>
    /// The manager frozen past its heartbeats (20 s: on waking it may find the workers' heartbeats expired), then its
    /// engine restarted (its own containers stop with it). After the freeze every workspace is Running on the node of
    /// its home, as one container, with the file written in its home before, answering at the endpoint its record
    /// names (a replaced task publishes Jupyter on a new host port: the record, and so the hub's route, follows it).
    /// After the restart the manager's own workspaces are Stopped saying why, with no container left, the workers'
    /// run on; started again, they come back on their node with their home. Then the same for a worker's engine.
    /// </summary>
    [SwarmFact]
    public async Task The_manager_frozen_past_its_heartbeats_or_restarted_or_a_worker_restarted_leaves_every_workspace_truthful_on_its_node_with_its_home()
    {
        string[] names = ["mgr-a", "mgr-b", "mgr-c"];
        var started = new List<(Workspace W, int Node)>();
        try
        {
            foreach (var name in names)
            {
                var w = await fx.UpAsync(name);
                started.Add((w, await SwarmLab.NodeNumberAsync(SwarmFixture.NodeOf(w))));
                var container = Assert.Single(await ContainersAsync(w));
                var write = await SwarmLab.DockerAsync(container.Node, ["exec", container.Id, "sh", "-c", $"echo {w.Id} > {Marker}"]);
                Assert.True(write.ExitCode == 0, write.StandardError);
            }

            Assert.True(started.Any(s => s.Node != 1), $"all three workspaces landed on the manager ({string.Join(", ", started.Select(s => s.Node))})");

            var pid = int.Parse(File.ReadAllText(ManagerPid).Trim(), System.Globalization.CultureInfo.InvariantCulture);
            Signal("STOP", pid);
            try
            {
                await Task.Delay(TimeSpan.FromSeconds(20));
                foreach (var (w, _) in started.Where(s => s.Node != 1))
                {
                    Assert.True(await SwarmFixture.AnswersAsync(w), $"{w.Name} on a worker stopped answering while the manager was frozen");
                }
            }
            finally
            {
                Signal("CONT", pid);
            }

            await SettledAsync(started, [], "after the manager was frozen for 20 s");

            // Restarted: its engine stops its own containers (Jupyter exits 0 on SIGTERM, so Swarm's on-failure policy
            // leaves the task complete, as a restarted host leaves a VM stopped). Those workspaces are Stopped with the
            // reason and no container; the workers' keep running; `start` brings them back on their node and home.
            await fx.Lab.RestartEngineAsync(1);
            var onManager = started.Where(s => s.Node == 1).ToList();
            await SettledAsync([.. started.Except(onManager)], onManager, "after the manager's engine restarted");
            foreach (var (w, _) in onManager)
            {
                Assert.Equal(WorkspaceState.Running, (await fx.Manager.StartAsync(SwarmFixture.Owner, w.Name, Core.Specs.GpuMode.None, null, default)).State);
            }

            await SettledAsync(started, [], "after its workspaces were started again");

            // A worker's engine restarted: the same on that node (its workspaces Stopped saying why, none left), the
            // others run on, and `start` brings them back on the worker with their home.
            var worker = started.First(s => s.Node != 1).Node;
            await fx.Lab.RestartEngineAsync(worker);
            var onWorker = started.Where(s => s.Node == worker).ToList();
            await SettledAsync([.. started.Except(onWorker)], onWorker, $"after the engine of worker {worker} restarted");
            foreach (var (w, _) in onWorker)
            {
                Assert.Equal(WorkspaceState.Running, (await fx.Manager.StartAsync(SwarmFixture.Owner, w.Name, Core.Specs.GpuMode.None, null, default)).State);
            }

            await SettledAsync(started, [], "after the worker's workspaces were started again");
        }
        finally
        {
            foreach (var name in names)
            {
                try
                {
                    await fx.Manager.DeleteAsync(SwarmFixture.Owner, name, deleteHome: true, null, default);
                }
                catch (NotFoundException)
                {
                }
            }
        }
    }

    private const string Marker = "/home/dsvm/.restart-marker";

    /// <summary>
    /// Within 3 minutes, as the manager's looks see it: each of <paramref name="running"/> Running on its node, one
    /// container, its home's file, answering; each of <paramref name="stopped"/> Stopped saying why, no container.
    /// </summary>
    private async Task SettledAsync(List<(Workspace W, int Node)> running, List<(Workspace W, int Node)> stopped, string when)
    {
        var sw = Stopwatch.StartNew();
        while (true)
        {
            var problems = new List<string>();
            IReadOnlyList<Workspace> listed = [];
            try
            {
                listed = await fx.Manager.ListAsync(SwarmFixture.Owner, default);
            }
            catch (DsvmException ex)
            {
                problems.Add($"list: {ex.Message}");
            }

            foreach (var (w, _) in stopped)
            {
                var now = listed.FirstOrDefault(x => x.Id == w.Id);
                var left = await ContainersAsync(w);
                if (now is not { State: WorkspaceState.Stopped, LastError: not null } || left.Count > 0)
                {
                    problems.Add($"{w.Name}: {now?.State} ({now?.LastError}), {left.Count} running containers; expected Stopped saying why, none");
                }
            }

            foreach (var (w, node) in running)
            {
                if (listed.FirstOrDefault(x => x.Id == w.Id) is not { } now)
                {
                    problems.Add($"{w.Name}: not listed");
                    continue;
                }

                if (now.State != WorkspaceState.Running)
                {
                    problems.Add($"{w.Name}: {now.State} ({now.LastError})");
                    continue;
                }

                var containers = await ContainersAsync(now);
                if (await SwarmLab.NodeNumberAsync(SwarmFixture.NodeOf(now)) != node || containers.Any(c => c.Node != node))
                {
                    problems.Add($"{w.Name}: moved off node {node}");
                }
                else if (containers.Count != 1)
                {
                    problems.Add($"{w.Name}: {containers.Count} running containers");
                }
                else if ((await SwarmLab.DockerAsync(node, ["exec", containers[0].Id, "cat", Marker])).StandardOutput.Trim() != w.Id)
                {
                    problems.Add($"{w.Name}: the file written in its home is gone");
                }
                else if (!await SwarmFixture.AnswersAsync(now))
                {
                    problems.Add($"{w.Name}: not answering at {now.Endpoint}");
                }
            }

            if (problems.Count == 0)
            {
                return;
            }

            Assert.True(sw.Elapsed < TimeSpan.FromMinutes(3), $"{when}, still after {sw.Elapsed.TotalSeconds:0} s: {string.Join("; ", problems)}");
            await Task.Delay(TimeSpan.FromSeconds(2));
        }
    }

    /// <summary>The running containers of a workspace's service on every node.</summary>
    private static async Task<List<(int Node, string Id)>> ContainersAsync(Workspace w)
    {
        var service = System.Text.Json.JsonDocument.Parse(w.BackendState).RootElement.GetProperty("service").GetString();
        var found = new List<(int, string)>();
        for (var node = 1; node <= 3; node++)
        {
            var ps = await SwarmLab.DockerAsync(node, ["ps", "-q", "--no-trunc", "--filter", $"label=com.docker.swarm.service.name={service}"]);
            found.AddRange(ps.StandardOutput.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(id => (node, id)));
        }

        return found;
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
