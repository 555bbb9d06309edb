using CliWrap;
using System.Net.Http.Headers;
using CliWrap.Buffered;
using Dsvm.Core.Sizes;
using Dsvm.Core.Workspaces;
using Dsvm.Testing;
using Xunit.Abstractions;

namespace Dsvm.Swarm.IntegrationTests;

/// <summary>
/// Issue 9, "what must work" 4 on Swarm: two workspaces on one node and one on another; from inside each, the
/// others' addresses (every address their containers have) and Jupyter's port there cannot be reached, while every
/// workspace still answers at the endpoint the hub uses (its published port on its node).
/// </summary>
[Collection("swarm")]
[Trait("Requires", "Docker")]
public sealed class SwarmIsolationTests(SwarmFixture fx, ITestOutputHelper output)
{
    private static readonly TimeSpan Long = TimeSpan.FromSeconds(180);

    [SwarmFact]
    public async Task Workspaces_on_one_node_and_on_two_nodes_cannot_reach_each_other_but_answer_the_hub()
    {
        using var onN1 = Backend("node.hostname==dsvmsw-n1");
        using var onN2 = Backend("node.hostname==dsvmsw-n2");
        var started = new List<(SwarmWorkspaceBackend Backend, Started W)>();
        try
        {
            var a = await StartAsync(onN1, "iso-a");
            started.Add((onN1, a));
            var b = await StartAsync(onN1, "iso-b");
            started.Add((onN1, b));
            var c = await StartAsync(onN2, "iso-c");
            started.Add((onN2, c));
            Assert.Equal(1, a.Node);
            Assert.Equal(1, b.Node);
            Assert.Equal(2, c.Node);

            foreach (var w in new[] { a, b, c })
            {
                output.WriteLine($"{w.Request.Name} on n{w.Node}: addresses {string.Join(' ', w.Addresses)}; networks {w.Networks}; endpoint {w.Endpoint}");
                // The hub's way in: the published port on its node, from outside the swarm.
                Assert.True(await AnswersAsync(w), $"{w.Request.Name} does not answer at {w.Endpoint}");
                // The probe works: a workspace reaches its own server at each of its addresses.
                foreach (var ip in w.Addresses)
                {
                    Assert.True(await ConnectsAsync(w, ip, SwarmBackendOptions.JupyterPort), $"{w.Request.Name} cannot reach itself at {ip}: the probe is broken");
                }
            }

            foreach (var (from, to) in new[] { (a, b), (b, a), (a, c), (c, a), (c, b) })
            {
                foreach (var ip in to.Addresses)
                {
                    Assert.False(await ConnectsAsync(from, ip, SwarmBackendOptions.JupyterPort),
                        $"{from.Request.Name} (n{from.Node}) reaches {to.Request.Name} (n{to.Node}) at {ip}:{SwarmBackendOptions.JupyterPort}");
                }
            }

            foreach (var w in new[] { a, b, c })
            {
                // Its own overlay, and no other network the engine names (docker0's "bridge" is gone).
                Assert.Equal(WorkspaceIds.NetworkName(w.Request.Id), w.Networks.Trim());
            }

            // The nodes' host rules (scripts/swarm-node-rules.sh, installed by the lab as an operator would): no
            // published port of another workspace (same node, other node), no port of any node (the manager's 2377,
            // its own node's), nothing on the hub's machine (the registry on 10.211.0.1). Before the rules, a
            // workspace reached the other node's published port and the manager port.
            foreach (var (from, to) in new[] { (a, b), (a, c), (c, a), (b, c) })
            {
                Assert.False(await ConnectsAsync(from, to.Endpoint.Host, to.Endpoint.Port),
                    $"{from.Request.Name} (n{from.Node}) reaches {to.Request.Name}'s published port {to.Endpoint.Host}:{to.Endpoint.Port}");
            }

            foreach (var w in new[] { a, c })
            {
                foreach (var (host, port) in new[] { (SwarmLab.NodeAddresses[0], 2377), (SwarmLab.NodeAddresses[w.Node - 1], 7946), ("10.211.0.1", 5000) })
                {
                    Assert.False(await ConnectsAsync(w, host, port), $"{w.Request.Name} (n{w.Node}) reaches {host}:{port}");
                }
            }

            // Published ports answer the hub's address only: another machine of the swarm's network (node 2's
            // namespace, 10.211.0.12) is refused.
            var fromNode2 = await Cli.Wrap("nsenter").WithArguments(["--net=/run/netns/dsvmsw-n2", "timeout", "3", "bash", "-c", $"exec 3<>/dev/tcp/{a.Endpoint.Host}/{a.Endpoint.Port}"])
                .WithValidation(CommandResultValidation.None).ExecuteBufferedAsync();
            Assert.True(fromNode2.ExitCode != 0, $"node 2 reaches {a.Request.Name}'s published port");

            // The outside stays reachable (network: internet): an address beyond the protected /24, routed by the node.
            await using (var outside = await OutsideAsync(a.Node))
            {
                Assert.True(await ConnectsAsync(a, OutsideAddress, outside.Port), $"{a.Request.Name} cannot reach {OutsideAddress}:{outside.Port} outside the swarm's network");
            }
        }
        finally
        {
            foreach (var (backend, w) in started)
            {
                await backend.DeleteAsync(w.Launch.Handle, w.Request.HomeVolume, keepHome: false, default);
            }
        }

        // Stop and delete take the overlays with them (found by label).
        foreach (var (_, w) in started)
        {
            var left = await SwarmLab.DockerAsync(1, ["network", "ls", "-q", "--filter", $"label=io.opendsvm.workspace={w.Request.Id}"]);
            Assert.Equal("", left.StandardOutput.Trim());
        }
    }

    /// <summary>
    /// Issue 9, "what must work" 4 on Swarm, <c>network: isolated</c>: the server is on an internal overlay only (no
    /// way out, no published port); the hub reaches it through its forwarder's port. From inside it nothing outside,
    /// no node, nothing on the hub's machine and no other workspace can be reached; another workspace reaches neither
    /// its addresses nor its forwarder. Stop takes both services and both overlays; a start brings it back.
    /// Before: the size was refused ("the swarm backend does not support yet").
    /// </summary>
    [SwarmFact]
    public async Task An_isolated_workspace_reaches_nothing_but_answers_the_hub_through_its_forwarder()
    {
        using var onN1 = Backend("node.hostname==dsvmsw-n1");
        var request = Request("iso-off") with { Size = SwarmFixture.Tiny with { Network = WorkspaceNetwork.Isolated } };
        var iso = await StartAsync(onN1, request);
        var peer = await StartAsync(onN1, "iso-on");
        try
        {
            output.WriteLine($"isolated: addresses {string.Join(' ', iso.Addresses)}; networks {iso.Networks}; endpoint {iso.Endpoint}");
            Assert.True(await AnswersAsync(iso), $"the isolated workspace does not answer at {iso.Endpoint}");
            Assert.True(await AnswersAsync(peer));
            Assert.Equal(WorkspaceIds.NetworkName(request.Id), iso.Networks.Trim());
            Assert.Equal(SwarmLab.NodeAddresses[0], iso.Endpoint.Host); // the forwarder runs on the server's node
            var status = await onN1.GetStatusAsync(iso.Launch.Handle, default);
            Assert.True(status.Running, status.Detail);
            Assert.Equal(iso.Endpoint, status.Endpoint);
            foreach (var ip in iso.Addresses)
            {
                Assert.True(await ConnectsAsync(iso, ip, SwarmBackendOptions.JupyterPort), $"the isolated workspace cannot reach itself at {ip}: the probe is broken");
            }

            await using (var outside = await OutsideAsync(1))
            {
                Assert.True(await ConnectsAsync(peer, OutsideAddress, outside.Port), "the internet workspace cannot reach the outside: the probe is broken");
                Assert.False(await ConnectsAsync(iso, OutsideAddress, outside.Port), "the isolated workspace reaches the outside");
            }

            foreach (var (host, port) in new[] { ("10.211.0.1", 5000), (SwarmLab.NodeAddresses[0], 2377), (SwarmLab.NodeAddresses[0], 7946), (peer.Endpoint.Host, peer.Endpoint.Port) })
            {
                Assert.False(await ConnectsAsync(iso, host, port), $"the isolated workspace reaches {host}:{port}");
            }

            foreach (var ip in peer.Addresses)
            {
                Assert.False(await ConnectsAsync(iso, ip, SwarmBackendOptions.JupyterPort), $"the isolated workspace reaches its neighbour at {ip}");
            }

            foreach (var ip in iso.Addresses)
            {
                Assert.False(await ConnectsAsync(peer, ip, SwarmBackendOptions.JupyterPort), $"the neighbour reaches the isolated workspace at {ip}");
            }

            Assert.False(await ConnectsAsync(peer, iso.Endpoint.Host, iso.Endpoint.Port), "the neighbour reaches the isolated workspace's forwarder");

            // Without its forwarder the hub cannot reach it: the status says so rather than "running".
            var forwarder = $"{WorkspaceIds.ObjectName(request.Id)}-fwd";
            var removed = await SwarmLab.DockerAsync(1, ["service", "rm", forwarder]);
            Assert.True(removed.ExitCode == 0, removed.StandardError);
            var orphaned = await onN1.GetStatusAsync(iso.Launch.Handle, default);
            Assert.False(orphaned.Running, orphaned.Detail);
            Assert.Contains("forwarder", orphaned.Detail, StringComparison.Ordinal);

            // At once, with the forwarder's task still shutting down: its overlays were once answered "not found"
            // (not a 404) while still listed; the stop retries that and removes both.
            await onN1.StopAsync(iso.Launch.Handle, default);
            var services = await SwarmLab.DockerAsync(1, ["service", "ls", "-q", "--filter", $"label=io.opendsvm.workspace={request.Id}"]);
            Assert.Equal("", services.StandardOutput.Trim());
            var networks = await SwarmLab.DockerAsync(1, ["network", "ls", "-q", "--filter", $"label=io.opendsvm.workspace={request.Id}"]);
            Assert.Equal("", networks.StandardOutput.Trim());

            iso = await StartAsync(onN1, request);
            Assert.True(await AnswersAsync(iso), $"the isolated workspace does not answer after a new start at {iso.Endpoint}");
        }
        finally
        {
            await onN1.DeleteAsync(iso.Launch.Handle, request.HomeVolume, keepHome: false, default);
            await onN1.DeleteAsync(peer.Launch.Handle, peer.Request.HomeVolume, keepHome: false, default);
        }
    }

    /// <summary>
    /// Issue 9, "what must work" 7 on Swarm: a home of the previous release (its files of uid 1000) on its node
    /// becomes the workspace user's at the next start, by the one-shot take-over service; other owners' files stay.
    /// </summary>
    [SwarmFact]
    public async Task A_home_with_files_of_the_previous_uid_is_taken_over_on_its_node_at_start()
    {
        using var onN2 = Backend("node.hostname==dsvmsw-n2");
        var request = Request("uid-old");
        var first = await StartAsync(onN2, request);
        try
        {
            Assert.Equal(2, first.Node);
            await onN2.StopAsync(first.Launch.Handle, default);
            // Made the previous release's way: the home, its files, a 700 directory and a symlink of uid 1000.
            var old = await SwarmLab.DockerAsync(2,
            [
                "run", "--rm", "--network", "none", "-u", "0:0", "--entrypoint", "/bin/sh", "-v", $"{request.HomeVolume}:/home/dsvm", fx.Backend.NodeImage(fx.Image), "-c",
                "set -e; cd /home/dsvm; echo old > notes.txt; mkdir private; echo s > private/secret.txt; chmod 700 private; chmod 600 notes.txt private/secret.txt;"
                + " ln -s notes.txt link; echo x > other.txt; chown 1234:1234 other.txt; chown -h 1000:1000 notes.txt private private/secret.txt link .",
            ]);
            Assert.True(old.ExitCode == 0, old.StandardError);

            var again = await StartAsync(onN2, request);
            Assert.Equal(2, again.Node);
            Assert.True(await AnswersAsync(again), $"uid-old does not answer at {again.Endpoint}");
            // As the workspace user (the container's own user, uid 65530): readable and writable now.
            var use = await ExecAsync(again.Node, again.Container,
                "set -e; cd /home/dsvm; id -u; cat private/secret.txt; echo more >> notes.txt; touch private/new; stat -c '%u %n' . notes.txt private link other.txt");
            output.WriteLine(use.StandardOutput + use.StandardError);
            Assert.True(use.ExitCode == 0, use.StandardError);
            var lines = use.StandardOutput.Split('\n', StringSplitOptions.RemoveEmptyEntries);
            Assert.Equal($"{WorkspaceUser.Uid}", lines[0]);
            Assert.Contains($"{WorkspaceUser.Uid} .", lines);
            Assert.Contains($"{WorkspaceUser.Uid} notes.txt", lines);
            Assert.Contains($"{WorkspaceUser.Uid} private", lines);
            Assert.Contains($"{WorkspaceUser.Uid} link", lines);
            Assert.Contains("1234 other.txt", lines); // not the previous uid's: untouched

            // The one-shot service is gone again.
            var takeOvers = await SwarmLab.DockerAsync(1, ["service", "ls", "-q", "--filter", "label=io.opendsvm.role"]);
            Assert.Equal("", takeOvers.StandardOutput.Trim());
        }
        finally
        {
            await onN2.DeleteAsync(first.Launch.Handle, request.HomeVolume, keepHome: false, default);
        }
    }

    /// <summary>
    /// Issue 9 (orphan overlays): an overlay whose workspace has no service, left by a start killed between the
    /// network and the service, is removed by reconciliation once older than the grace period; a workspace's
    /// overlay in use and a fresh orphan (a start may be about to create its service) are kept.
    /// </summary>
    [SwarmFact]
    public async Task An_overlay_without_its_workspaces_service_is_swept_after_the_grace_period_only()
    {
        using var onN1 = Backend("node.hostname==dsvmsw-n1");
        var kept = await StartAsync(onN1, "sweep-keep");
        const string orphanId = "ws-0a0b0c0d0e0f";
        var orphan = WorkspaceIds.NetworkName(orphanId);
        try
        {
            var made = await SwarmLab.DockerAsync(1, ["network", "create", "-d", "overlay", "--label", "io.opendsvm.managed=true",
                "--label", $"io.opendsvm.workspace={orphanId}", orphan]);
            Assert.True(made.ExitCode == 0, made.StandardError);

            // Within the grace period: nothing is removed.
            Assert.Empty(await onN1.SweepOrphansAsync(default));
            Assert.Equal(0, (await SwarmLab.DockerAsync(1, ["network", "inspect", orphan])).ExitCode);

            // Eleven minutes later (the backend's clock): the orphan goes, the running workspace's overlay stays.
            using var later = new SwarmWorkspaceBackend(onN1.Options, new ShiftedTime(TimeSpan.FromMinutes(11)));
            var removed = await later.SweepOrphansAsync(default);
            Assert.Equal([orphan], removed.Select(r => r.Split(' ')[2]));
            Assert.NotEqual(0, (await SwarmLab.DockerAsync(1, ["network", "inspect", orphan])).ExitCode);
            Assert.Equal(0, (await SwarmLab.DockerAsync(1, ["network", "inspect", WorkspaceIds.NetworkName(kept.Request.Id)])).ExitCode);
            Assert.True(await AnswersAsync(kept));
        }
        finally
        {
            await onN1.DeleteAsync(kept.Launch.Handle, kept.Request.HomeVolume, keepHome: false, default);
            await SwarmLab.DockerAsync(1, ["network", "rm", orphan]);
        }
    }

    private sealed class ShiftedTime(TimeSpan by) : TimeProvider
    {
        public override DateTimeOffset GetUtcNow() => base.GetUtcNow() + by;
    }

    private const string OutsideAddress = "10.214.0.1";

    /// <summary>
    /// "The internet" for one node: <see cref="OutsideAddress"/> on this machine's end of the lab bridge, routed from
    /// that node, with a listener on it; removed again on dispose.
    /// </summary>
    private static async Task<Outside> OutsideAsync(int node)
    {
        async Task Ip(params string[] args) =>
            await Cli.Wrap("ip").WithArguments(args).WithValidation(CommandResultValidation.None).ExecuteBufferedAsync();
        await Ip("addr", "add", OutsideAddress + "/32", "dev", "dsvmsw0");
        await Ip("-n", $"dsvmsw-n{node}", "route", "add", OutsideAddress + "/32", "via", "10.211.0.1");
        var listener = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Parse(OutsideAddress), 0);
        listener.Start();
        _ = AcceptAllAsync(listener);
        return new Outside(((System.Net.IPEndPoint)listener.LocalEndpoint).Port, async () =>
        {
            listener.Stop();
            await Ip("-n", $"dsvmsw-n{node}", "route", "del", OutsideAddress + "/32");
            await Ip("addr", "del", OutsideAddress + "/32", "dev", "dsvmsw0");
        });
    }

    private static async Task AcceptAllAsync(System.Net.Sockets.TcpListener listener)
    {
        try
        {
            while (true)
            {
                (await listener.AcceptTcpClientAsync()).Dispose();
            }
        }
        catch (Exception ex) when (ex is System.Net.Sockets.SocketException or ObjectDisposedException)
        {
            // stopped
        }
    }

    private sealed class Outside(int port, Func<Task> remove) : IAsyncDisposable
    {
        public int Port => port;

        public async ValueTask DisposeAsync() => await remove();
    }

    private static SwarmWorkspaceBackend Backend(string constraint) => new(SwarmFixture.LabOptions with { Constraints = [constraint] });

    private sealed record Started(WorkspaceStartRequest Request, WorkspaceLaunch Launch, int Node, string Container, string[] Addresses, string Networks)
    {
        public Uri Endpoint => Launch.Endpoint;
    }

    private Task<Started> StartAsync(SwarmWorkspaceBackend backend, string name) => StartAsync(backend, Request(name));

    private WorkspaceStartRequest Request(string name)
    {
        var homeId = WorkspaceIds.NewHomeId();
        return new WorkspaceStartRequest
        {
            Id = WorkspaceIds.NewWorkspaceId(), Name = name, Owner = SwarmFixture.Owner, OwnerId = WorkspaceIds.LocalOwnerId,
            HomeId = homeId, HomeVolume = WorkspaceIds.HomeObjectName(homeId), Image = fx.Image, Size = SwarmFixture.Tiny,
            Token = Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(16)),
            BaseUrl = $"/user/{SwarmFixture.Owner}/{name}/",
        };
    }

    private static async Task<Started> StartAsync(SwarmWorkspaceBackend backend, WorkspaceStartRequest request)
    {
        var name = request.Name;
        var launch = await backend.StartAsync(request, null, default);
        var nodeId = launch.Handle.State.GetProperty("node").GetString();
        var node = await SwarmLab.NodeNumberAsync(nodeId!);
        var container = (await SwarmLab.DockerAsync(node, ["ps", "-q", "--filter", $"label=com.docker.swarm.service.name={WorkspaceIds.ObjectName(request.Id)}"])).StandardOutput.Trim();
        Assert.False(string.IsNullOrEmpty(container), $"no container of {name} on node {node}");
        var networks = (await SwarmLab.DockerAsync(node, ["inspect", "-f", "{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}", container])).StandardOutput;
        // Every address the container has (overlay, docker_gwbridge or docker0), as the kernel lists them.
        var addresses = (await ExecAsync(node, container, "awk '/32 host/ { print f } { f = $2 }' /proc/net/fib_trie | sort -u | grep -v '^127[.]'"))
            .StandardOutput.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        Assert.NotEmpty(addresses);
        var started = new Started(request, launch, node, container, addresses, networks);
        var deadline = DateTime.UtcNow + Long;
        while (!await AnswersAsync(started) && DateTime.UtcNow < deadline)
        {
            await Task.Delay(500);
        }

        return started;
    }

    private static Task<BufferedCommandResult> ExecAsync(int node, string container, string script) =>
        SwarmLab.DockerAsync(node, ["exec", container, "bash", "-c", script]);

    /// <summary>A TCP connection from inside the workspace (bash's /dev/tcp, 3 s at most): true when it opened.</summary>
    private static async Task<bool> ConnectsAsync(Started from, string host, int port)
    {
        var r = await ExecAsync(from.Node, from.Container, $"timeout 3 bash -c 'exec 3<>/dev/tcp/{host}/{port}'");
        return r.ExitCode == 0;
    }

    private static async Task<bool> AnswersAsync(Started w)
    {
        using var req = new HttpRequestMessage(HttpMethod.Get, new Uri(w.Endpoint, w.Request.BaseUrl + "api/status"));
        req.Headers.Authorization = new AuthenticationHeaderValue("token", w.Request.Token);
        try
        {
            using var resp = await SwarmFixture.Http.SendAsync(req);
            return resp.IsSuccessStatusCode;
        }
        catch (HttpRequestException)
        {
            return false;
        }
        catch (TaskCanceledException)
        {
            return false;
        }
    }
}
