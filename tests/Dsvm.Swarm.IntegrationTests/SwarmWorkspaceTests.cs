using System.Diagnostics;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Dsvm.Core;
using Dsvm.Core.Sizes;
using Dsvm.Core.Workspaces;
using Dsvm.Data;
using Dsvm.Testing;
using Xunit.Abstractions;

namespace Dsvm.Swarm.IntegrationTests;

[Collection("swarm")]
[Trait("Requires", "Docker")]
public sealed class SwarmWorkspaceTests(SwarmFixture fx, ITestOutputHelper output)
{
    private static readonly TimeSpan Long = TimeSpan.FromSeconds(180);

    [SwarmFact]
    public async Task Thirty_workspaces_start_through_the_manager_and_spread_over_all_three_nodes()
    {
        var fleet = await fx.FleetAsync();
        var took = fleet.Started.Select(s => s.Took.TotalSeconds).Order().ToList();
        output.WriteLine($"image distribution: push {fx.PushTime.TotalSeconds:0.0} s, pull on 3 nodes {fx.PullTime.TotalSeconds:0.0} s");
        output.WriteLine($"started {fleet.Started.Count} of 30 (6 at a time) in {fleet.Total.TotalSeconds:0.0} s; "
            + (took.Count > 0 ? $"per workspace p50 {took[took.Count / 2]:0.0} s, max {took[^1]:0.0} s" : ""));
        foreach (var f in fleet.Failed)
        {
            output.WriteLine("FAILED " + f);
        }

        Assert.Empty(fleet.Failed);
        Assert.Equal(30, fleet.Started.Count);
        // Current records (the drain test may have run first and moved ports).
        var current = (await fx.Manager.ListAsync(SwarmFixture.Owner, default)).Where(w => w.Name.StartsWith('w')).ToList();
        Assert.Equal(30, current.Count);
        foreach (var w in current)
        {
            Assert.Equal(WorkspaceState.Running, w.State);
            Assert.Contains(new Uri(w.Endpoint!).Host, SwarmLab.NodeAddresses);
            Assert.True(await SwarmFixture.AnswersAsync(w), $"{w.Name} at {w.Endpoint} does not answer /api/status");
        }

        var byNode = current.GroupBy(SwarmFixture.NodeOf).ToDictionary(g => g.Key, g => g.Count());
        output.WriteLine("per node: " + string.Join(", ", byNode.Select(kv => $"{kv.Key[..8]}={kv.Value}")));
        var nodes = await Task.WhenAll(Enumerable.Range(1, 3).Select(n => SwarmLab.NodeIdAsync(n)));
        foreach (var node in nodes)
        {
            Assert.True(byNode.GetValueOrDefault(node) > 0, $"no workspace on node {node}: {string.Join(", ", byNode)}");
        }

        // The backend's own view agrees: 30 labelled services, all running.
        var managed = new List<ManagedResource>();
        await foreach (var r in fx.Backend.ListManagedAsync(default))
        {
            managed.Add(r);
        }

        // Services are named from workspace IDs (dsvm-ws-…), never from owner and name.
        var ids = current.Select(w => w.Id).ToHashSet(StringComparer.Ordinal);
        Assert.Equal(30, managed.Count(r => r.Running && ids.Contains(r.WorkspaceId) && r.Name == $"dsvm-{r.WorkspaceId}"));

        var health = await fx.Backend.DescribeAsync(default);
        output.WriteLine(health.Detail);
        Assert.True(health.Healthy, health.Detail);
        Assert.Contains("3 nodes, 3 ready, 3 active", health.Detail, StringComparison.Ordinal);
        Assert.Equal(6, health.Capacity!.Cpus);
        var capacity = await fx.Backend.GetCapacityAsync(default);
        Assert.Equal(2, capacity.Cpus); // the largest single node: what one workspace can get
        Assert.Equal(1, capacity.Gpus); // node 3 advertises NVIDIA-GPU=1
    }

    [SwarmFact]
    public async Task Draining_a_node_leaves_its_pinned_workspaces_pending_and_the_rest_running_until_it_is_active_again()
    {
        var fleet = await fx.FleetAsync();
        Assert.Empty(fleet.Failed);
        var n3 = await SwarmLab.NodeIdAsync(3);
        var onN3 = fleet.Started.Select(s => s.W).Where(w => SwarmFixture.NodeOf(w) == n3).ToList();
        var others = fleet.Started.Select(s => s.W).Where(w => SwarmFixture.NodeOf(w) != n3).ToList();
        Assert.NotEmpty(onN3);
        output.WriteLine($"draining node 3: {onN3.Count} workspaces there, {others.Count} elsewhere");

        var drain = await SwarmLab.DockerAsync(1, ["node", "update", "--availability", "drain", n3]);
        Assert.True(drain.ExitCode == 0, drain.StandardError);
        try
        {
            // Their homes are on node 3: Swarm cannot move them, the replacement task stays pending, with why.
            foreach (var w in onN3)
            {
                var status = await EventuallyAsync(() => fx.Backend.GetStatusAsync(w.Handle, default),
                    s => !s.Running && s.Detail.Contains("no suitable node", StringComparison.Ordinal), Long);
                output.WriteLine($"{w.Name}: {status.Detail}");
                Assert.Contains("pending", status.Detail, StringComparison.Ordinal);
                Assert.Contains("no suitable node", status.Detail, StringComparison.Ordinal);
                Assert.Contains("pinned to node dsvmsw-n3 (10.211.0.13", status.Detail, StringComparison.Ordinal);
                Assert.Contains("which is drain", status.Detail, StringComparison.Ordinal);
            }

            // The manager reports them stopped, with the backend's reason.
            var listed = (await fx.Manager.ListAsync(SwarmFixture.Owner, default)).ToDictionary(w => w.Name);
            foreach (var w in onN3)
            {
                Assert.Equal(WorkspaceState.Stopped, listed[w.Name].State);
                Assert.Contains("drain", listed[w.Name].LastError, StringComparison.Ordinal);
            }

            // Everything else keeps running and answering.
            foreach (var w in others)
            {
                Assert.Equal(WorkspaceState.Running, listed[w.Name].State);
                Assert.True(await SwarmFixture.AnswersAsync(listed[w.Name]), $"{w.Name} stopped answering during the drain");
            }

            // Starting one now fails clearly instead of moving it away from its home.
            var first = onN3[0];
            var ex = await Assert.ThrowsAsync<WorkspaceStartException>(() =>
                fx.Manager.StartAsync(SwarmFixture.Owner, first.Name, Core.Specs.GpuMode.None, null, default));
            output.WriteLine($"start during drain: {ex.Message}");
            Assert.Equal(WorkspaceFailure.Capacity, ex.Reason);
            Assert.Contains("which is drain", ex.Message, StringComparison.Ordinal);
        }
        finally
        {
            var active = await SwarmLab.DockerAsync(1, ["node", "update", "--availability", "active", n3]);
            Assert.True(active.ExitCode == 0, active.StandardError);
        }

        // Active again: the pending tasks are placed on node 3 by Swarm itself; the one whose start failed (its
        // service was removed) comes back through the manager's start. All on node 3, all answering.
        var sw = Stopwatch.StartNew();
        var restarted = await fx.Manager.StartAsync(SwarmFixture.Owner, onN3[0].Name, Core.Specs.GpuMode.None, null, default);
        Assert.Equal(n3, SwarmFixture.NodeOf(restarted));
        foreach (var w in onN3.Skip(1))
        {
            await EventuallyAsync(() => fx.Backend.GetStatusAsync(w.Handle, default), s => s.Running, Long);
        }

        foreach (var w in onN3)
        {
            // The task runs again; the record follows once its Jupyter answers (Starting until then).
            var now = await EventuallyAsync(
                async () => (await fx.Manager.ListAsync(SwarmFixture.Owner, default)).Single(x => x.Name == w.Name),
                x => x.State == WorkspaceState.Running, Long);
            Assert.Equal(WorkspaceState.Running, now.State);
            Assert.Equal(SwarmLab.NodeAddresses[2], new Uri(now.Endpoint!).Host);
            Assert.True(await EventuallyAsync(() => SwarmFixture.AnswersAsync(now), ok => ok, Long), $"{w.Name} does not answer after the node came back");
        }

        output.WriteLine($"node 3's {onN3.Count} workspaces back in {sw.Elapsed.TotalSeconds:0.0} s");
    }

    [SwarmFact]
    public async Task Stop_and_start_keep_the_home_on_its_node_and_delete_removes_the_volume_there()
    {
        const string name = "homes";
        var w = await fx.UpAsync(name);
        var node = SwarmFixture.NodeOf(w);
        await PutFileAsync(w, "kept.txt", "still here");

        await fx.Manager.StopAsync(SwarmFixture.Owner, name, null, default);
        var stopped = await fx.Backend.GetStatusAsync(w.Handle, default);
        Assert.False(stopped.Exists);
        Assert.True(await fx.Backend.HomeExistsAsync(w.HomeVolume, default));

        var again = await fx.Manager.StartAsync(SwarmFixture.Owner, name, Core.Specs.GpuMode.None, null, default);
        Assert.Equal(node, SwarmFixture.NodeOf(again));
        Assert.Equal("still here", await GetFileAsync(again, "kept.txt"));

        var logs = await fx.Manager.LogsAsync(SwarmFixture.Owner, name, 20, default);
        Assert.Contains("Jupyter", logs, StringComparison.OrdinalIgnoreCase);

        // The volume lives on that node's engine only; delete with the home removes it there.
        var index = await SwarmLab.NodeNumberAsync(node);
        Assert.Equal(0, (await SwarmLab.DockerAsync(index, ["volume", "inspect", w.HomeVolume])).ExitCode);
        await fx.Manager.DeleteAsync(SwarmFixture.Owner, name, deleteHome: true, null, default);
        Assert.NotEqual(0, (await SwarmLab.DockerAsync(index, ["volume", "inspect", w.HomeVolume])).ExitCode);
        Assert.False(await fx.Backend.HomeExistsAsync(w.HomeVolume, default));
        Assert.False((await fx.Backend.GetStatusAsync(w.Handle, default)).Exists);
    }

    /// <summary>
    /// Issue 12, "the backend is found by label" on Swarm: a record lost from the state file is rebuilt from the
    /// service's labels by <c>dsvm doctor --repair</c>'s pass (owner, name, environment, size, home), Stopped, its
    /// running server stopped (its token was in the lost record), its home kept on its node. Only that record is lost
    /// (a copy of the fixture's state file without its row): every other workspace of the swarm keeps running.
    /// </summary>
    [SwarmFact]
    public async Task A_lost_record_is_rebuilt_from_the_service_labels_and_its_server_stopped()
    {
        const string name = "relabel";
        var w = await fx.UpAsync(name);
        var home = Path.Combine(TestEnvironment.Home, "swarm-rebuild");
        var paths = new DsvmPaths(Path.Combine(home, "data"), Path.Combine(home, "cache")).EnsureCreated();
        try
        {
            var others = (await fx.Store.ListAsync(null, default)).Where(r => r.Id != w.Id && r.State == WorkspaceState.Running).ToList();
            using (var source = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={fx.DatabasePath}"))
            using (var copy = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={paths.Database}"))
            {
                source.Open();
                copy.Open();
                source.BackupDatabase(copy);
                using var lose = copy.CreateCommand();
                lose.CommandText = "DELETE FROM workspaces WHERE Id = $id";
                lose.Parameters.AddWithValue("$id", w.Id);
                Assert.Equal(1, lose.ExecuteNonQuery());
            }

            var store = new SqliteWorkspaceStore(paths.Database);
            var manager = SwarmFixture.NewManager(fx.Backend, store, paths, new WorkspaceOptions());
            var rebuilt = Assert.Single(await manager.RebuildFromLabelsAsync(default));
            Assert.Equal((w.Id, SwarmFixture.Owner, name, "minimal", SwarmFixture.Tiny.Name, w.HomeVolume, WorkspaceState.Stopped),
                (rebuilt.Id, rebuilt.Owner, rebuilt.Name, rebuilt.Environment, rebuilt.Size, rebuilt.HomeVolume, rebuilt.State));
            Assert.NotEqual(w.Token, rebuilt.Token);
            Assert.False((await fx.Backend.GetStatusAsync(w.Handle, default)).Exists);
            Assert.True(await fx.Backend.HomeExistsAsync(w.HomeVolume, default));
            Assert.Empty(await manager.RebuildFromLabelsAsync(default)); // once
            foreach (var other in others)
            {
                Assert.True((await fx.Backend.GetStatusAsync(other.Handle, default)).Running, $"{other.Name} was stopped by the rebuild");
            }
        }
        finally
        {
            await fx.Manager.DeleteAsync(SwarmFixture.Owner, name, deleteHome: true, null, default);
            Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
            Directory.Delete(home, recursive: true);
        }
    }

    /// <summary>
    /// Where the lab's engine stops running GPU tasks (before 23.0.2, moby/moby#44378; Debian 12's 20.10 is one: CI saw
    /// "task rejected by constraint enforcer: assigned node no longer meets constraints" once workspaces had their own
    /// overlays), a GPU size is refused up front with the reason and nothing is left in the swarm; on a fixed engine
    /// it is placed only on the node advertising NVIDIA-GPU, and two GPUs fit nowhere.
    /// </summary>
    [SwarmFact]
    public async Task A_gpu_size_is_placed_only_on_the_node_advertising_NVIDIA_GPU_or_refused_where_the_engine_would_kill_it()
    {
        var id = "ws-a0b1c2d3e4f5";
        var request = new WorkspaceStartRequest
        {
            Id = id, Name = "gpu", Owner = SwarmFixture.Owner, Image = fx.Image,
            Size = new MachineSize("gpu-tiny", 0.1, 0.25, 1, SizeClass.Gpu), Token = "t0k3n", HomeVolume = "dsvm-home-sw-gpu",
            BaseUrl = "/user/sw/gpu/", Gpu = true,
        };
        var version = (await SwarmLab.DockerAsync(1, ["version", "-f", "{{.Server.Version}}"])).StandardOutput.Trim();
        output.WriteLine($"lab engine {version}");
        if (SwarmWorkspaceBackend.RejectsGenericResourceTasks(version))
        {
            var refused = await Assert.ThrowsAsync<WorkspaceStartException>(() => fx.Backend.StartAsync(request, null, default));
            output.WriteLine(refused.Message);
            Assert.Equal(WorkspaceFailure.Gpu, refused.Reason);
            Assert.Contains($"Docker Engine {version}", refused.Message, StringComparison.Ordinal);
            Assert.Contains("23.0.2", refused.Message, StringComparison.Ordinal);
            foreach (var kind in new[] { "service", "network" })
            {
                var left = await SwarmLab.DockerAsync(1, [kind, "ls", "-q", "--filter", $"label=io.opendsvm.workspace={id}"]);
                Assert.Equal("", left.StandardOutput.Trim());
            }

            return;
        }

        var launch = await fx.Backend.StartAsync(request, null, default);
        try
        {
            Assert.Equal(await SwarmLab.NodeIdAsync(3), launch.Handle.State.GetProperty("node").GetString());
            Assert.Equal(SwarmLab.NodeAddresses[2], launch.Endpoint.Host);

            // Two GPUs fit on no node: refused with Swarm's reason, not left pending.
            var ex = await Assert.ThrowsAsync<WorkspaceStartException>(() => fx.Backend.StartAsync(request with
            {
                Id = "ws-a0b1c2d3e4f6", Name = "gpu2", HomeVolume = "dsvm-home-sw-gpu2", Size = request.Size with { Gpus = 2 },
            }, null, default));
            output.WriteLine(ex.Message);
            Assert.Equal(WorkspaceFailure.Capacity, ex.Reason);
            Assert.Contains("insufficient resources", ex.Message, StringComparison.Ordinal);
        }
        finally
        {
            await fx.Backend.DeleteAsync(launch.Handle, request.HomeVolume, keepHome: false, default);
        }
    }

    private static async Task<T> EventuallyAsync<T>(Func<Task<T>> get, Func<T, bool> done, TimeSpan within)
    {
        var deadline = DateTime.UtcNow + within;
        while (true)
        {
            var value = await get();
            if (done(value) || DateTime.UtcNow > deadline)
            {
                return value;
            }

            await Task.Delay(500);
        }
    }

    private static HttpRequestMessage Contents(HttpMethod method, Workspace w, string file)
    {
        var req = new HttpRequestMessage(method, new Uri(new Uri(w.Endpoint!), w.BaseUrl + "api/contents/" + file));
        req.Headers.Authorization = new AuthenticationHeaderValue("token", w.Token);
        return req;
    }

    private static async Task PutFileAsync(Workspace w, string file, string text)
    {
        using var req = Contents(HttpMethod.Put, w, file);
        req.Content = new StringContent(JsonSerializer.Serialize(new { type = "file", format = "text", content = text }), Encoding.UTF8, "application/json");
        using var resp = await SwarmFixture.Http.SendAsync(req);
        Assert.True(resp.IsSuccessStatusCode, $"PUT {file}: {(int)resp.StatusCode} {await resp.Content.ReadAsStringAsync()}");
    }

    private static async Task<string> GetFileAsync(Workspace w, string file)
    {
        using var req = Contents(HttpMethod.Get, w, file);
        using var resp = await SwarmFixture.Http.SendAsync(req);
        Assert.True(resp.IsSuccessStatusCode, $"GET {file}: {(int)resp.StatusCode}");
        return JsonDocument.Parse(await resp.Content.ReadAsStringAsync()).RootElement.GetProperty("content").GetString()!;
    }
}
