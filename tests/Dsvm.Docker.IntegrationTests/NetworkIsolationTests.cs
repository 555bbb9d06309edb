using System.Net;
using System.Net.Http.Headers;
using System.Net.Sockets;
using Dsvm.Core.Sizes;
using Dsvm.Core.Workspaces;
using Dsvm.Testing;

namespace Dsvm.Docker.IntegrationTests;

/// <summary>
/// Issue 9, finding 4: a workspace reaches neither another workspace nor the host (hub included), while the host
/// still reaches every workspace. Every probe runs from inside a real container (python3 sockets, 3 s timeout) and
/// only ever targets the containers' own addresses and this host's addresses on its Docker bridges.
/// </summary>
[Trait("Requires", "Docker")]
[Collection("docker")]
public sealed class NetworkIsolationTests
{
    private readonly WorkspaceStack _stack = new(sizes: new SizeCatalog(
    [
        .. SizeCatalog.Defaults,
        new MachineSize("small-isolated", 1, 2, 0, SizeClass.General, "no route out", WorkspaceNetwork.Isolated),
    ]));

    /// <summary>Tries each target from inside the workspace: "open", or the error the connect ended with.</summary>
    private static async Task<Dictionary<string, string>> ProbeAsync(Workspace from, params (string Host, int Port)[] targets)
    {
        const string script = """
            import socket, sys
            for t in sys.argv[1:]:
                h, p = t.rsplit(":", 1)
                try:
                    socket.create_connection((h, int(p)), timeout=3).close()
                    print(t, "open")
                except OSError as e:
                    print(t, type(e).__name__)
            """;
        var output = await WorkspaceStack.ExecAsync(from, ["python3", "-c", script, .. targets.Select(t => $"{t.Host}:{t.Port}")]);
        return output.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.Split(' ', 2)).ToDictionary(f => f[0], f => f[1]);
    }

    private static async Task<(string Ip, string Gateway)> AddressOfAsync(Workspace w)
    {
        var r = await WorkspaceStack.Docker.RunAsync(["inspect", "--format", "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{.Gateway}}{{end}}", w.ContainerId!], default);
        var f = r.Stdout.Trim().Split(' ');
        return (f[0], f.Length > 1 ? f[1] : "");
    }

    private static async Task<HttpStatusCode> StatusAsync(Workspace w)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, new Uri(new Uri(w.Endpoint!), w.BaseUrl.TrimStart('/') + "api/status"));
        request.Headers.Authorization = new AuthenticationHeaderValue("token", w.Token);
        using var response = await WorkspaceStack.Client.SendAsync(request);
        return response.StatusCode;
    }

    /// <summary>
    /// The host address the probe below aims at. A fresh engine lists only its default bridge's subnet, no gateway:
    /// that gave "" here, and the probe of the host through docker0 aimed at nothing (and the Kubernetes lab did not
    /// start). The gateway is then the bridge interface's own address.
    /// </summary>
    [DockerFact]
    public async Task TheDefaultBridgeGateway_IsAHostAddressInTheBridgeSubnet()
    {
        var gateway = await DefaultBridge.GatewayAsync();
        var subnet = (await WorkspaceStack.Docker.RunAsync(["network", "inspect", "bridge", "--format", "{{range .IPAM.Config}}{{.Subnet}}{{end}}"], default)).Stdout.Trim();
        Assert.True(IPNetwork.Parse(subnet).Contains(gateway), $"{gateway} is not in the bridge's subnet {subnet}");
        Assert.Contains(System.Net.NetworkInformation.NetworkInterface.GetAllNetworkInterfaces().SelectMany(i => i.GetIPProperties().UnicastAddresses),
            a => a.Address.Equals(gateway));
    }

    [DockerFact]
    public async Task AWorkspaceReachesNeitherAnotherWorkspaceNorTheHostWhileTheHostReachesBoth()
    {
        await _stack.CleanupAsync("net-a");
        await _stack.CleanupAsync("net-b");
        // A host service on every address (think the hub, a database, an SSH daemon).
        using var host = new TcpListener(IPAddress.Any, 0);
        host.Start();
        var hostPort = ((IPEndPoint)host.LocalEndpoint).Port;
        try
        {
            var a = await _stack.UpAsync("net-a");
            var b = await _stack.UpAsync("net-b");
            var (aIp, aGateway) = await AddressOfAsync(a);
            var (bIp, _) = await AddressOfAsync(b);
            var docker0 = (await DefaultBridge.GatewayAsync()).ToString();

            var seen = await ProbeAsync(a, ("127.0.0.1", 8888), (bIp, 8888), (aGateway, hostPort), (docker0, hostPort), (aGateway, 22));

            Assert.Equal("open", seen[$"127.0.0.1:8888"]); // the probe itself works: its own server
            Assert.NotEqual("open", seen[$"{bIp}:8888"]);
            Assert.NotEqual("open", seen[$"{aGateway}:{hostPort}"]);
            Assert.NotEqual("open", seen[$"{docker0}:{hostPort}"]);
            Assert.NotEqual("open", seen[$"{aGateway}:22"]);
            // The other direction too, and not by a detour through the host's addresses.
            var back = await ProbeAsync(b, (aIp, 8888), (aGateway, hostPort));
            Assert.NotEqual("open", back[$"{aIp}:8888"]);
            Assert.NotEqual("open", back[$"{aGateway}:{hostPort}"]);

            // The host (the CLI's manager, the hub's proxy) still reaches both servers.
            Assert.Equal(HttpStatusCode.OK, await StatusAsync(a));
            Assert.Equal(HttpStatusCode.OK, await StatusAsync(b));
        }
        finally
        {
            host.Stop();
            await _stack.CleanupAsync("net-a");
            await _stack.CleanupAsync("net-b");
        }
    }

    [DockerFact]
    public async Task AnIsolatedWorkspaceHasNoRouteOutAndStillReachesNoPeerNorTheHost()
    {
        await _stack.CleanupAsync("net-iso");
        await _stack.CleanupAsync("net-peer");
        using var host = new TcpListener(IPAddress.Any, 0);
        host.Start();
        var hostPort = ((IPEndPoint)host.LocalEndpoint).Port;
        try
        {
            var iso = await _stack.UpAsync("net-iso", "small-isolated");
            var peer = await _stack.UpAsync("net-peer");
            var (isoIp, isoGateway) = await AddressOfAsync(iso);
            var (peerIp, _) = await AddressOfAsync(peer);

            // Docker 20.10 still gives an internal network's containers a default route via the bridge (the host), so
            // "no way out" is the engine's rule that drops whatever leaves that bridge for elsewhere (and the host's
            // INPUT rules below). Checked on the host: no traffic is sent to an outside address.
            var subnet = (await WorkspaceStack.Docker.RunAsync(["network", "inspect", "dsvm-isolated", "--format", "{{range .IPAM.Config}}{{.Subnet}}{{end}}"], default)).Stdout.Trim();
            var isolation = (await new Dsvm.Images.DockerCli("iptables").RunAsync(["-w", "-S", "DOCKER-ISOLATION-STAGE-1"], default)).Stdout;
            Assert.Contains($"-A DOCKER-ISOLATION-STAGE-1 ! -d {subnet} -i dsvm-ws1 -j DROP", isolation, StringComparison.Ordinal);

            var docker0 = (await DefaultBridge.GatewayAsync()).ToString();
            var seen = await ProbeAsync(iso, ("127.0.0.1", 8888), (peerIp, 8888), (isoGateway, hostPort), (docker0, hostPort));
            Assert.Equal("open", seen["127.0.0.1:8888"]);
            Assert.NotEqual("open", seen[$"{peerIp}:8888"]);
            Assert.NotEqual("open", seen[$"{isoGateway}:{hostPort}"]);
            Assert.NotEqual("open", seen[$"{docker0}:{hostPort}"]);
            Assert.NotEqual("open", (await ProbeAsync(peer, (isoIp, 8888)))[$"{isoIp}:8888"]);

            // The host reaches it at its own address (an internal network publishes no port).
            Assert.Equal($"http://{isoIp}:8888/", iso.Endpoint);
            Assert.Equal(HttpStatusCode.OK, await StatusAsync(iso));
        }
        finally
        {
            host.Stop();
            await _stack.CleanupAsync("net-iso");
            await _stack.CleanupAsync("net-peer");
        }
    }
}
