using Docker.DotNet;
using Dsvm.Core.Sizes;
using Dsvm.Core.Workspaces;

namespace Dsvm.Docker.Tests;

public sealed class NetworkDefinitionTests : IDisposable
{
    private readonly DockerClient _client = new DockerClientConfiguration(new Uri("unix:///nonexistent.sock")).CreateClient();

    public void Dispose() => _client.Dispose();

    private sealed class NoGpus : IGpuDetector
    {
        public Task<IReadOnlyList<GpuInfo>> DetectAsync(CancellationToken ct) => Task.FromResult<IReadOnlyList<GpuInfo>>([]);
    }

    private static WorkspaceStartRequest Request(WorkspaceNetwork network) => new()
    {
        Id = "ws-0123456789ab", Name = "proj", Owner = "alice", Image = "dsvm/minimal:latest",
        Size = new MachineSize("small", 1, 2, 0, SizeClass.General, "", network),
        Token = new string('a', 64), HomeVolume = "dsvm-home-x", BaseUrl = "/user/alice/proj/",
    };

    [Theory]
    [InlineData(WorkspaceNetwork.Internet, "dsvm-workspaces", "dsvm-ws0", false)]
    [InlineData(WorkspaceNetwork.Isolated, "dsvm-isolated", "dsvm-ws1", true)]
    public void EachModeHasASharedBridgeWithoutContainerToContainerTraffic(WorkspaceNetwork mode, string name, string bridge, bool isInternal)
    {
        var d = DockerNetworks.Definition(mode);
        Assert.Equal(name, d.Name);
        Assert.Equal(isInternal, d.Internal);
        Assert.Equal("false", d.Options["com.docker.network.bridge.enable_icc"]);
        Assert.Equal(bridge, d.Options["com.docker.network.bridge.name"]);
        Assert.StartsWith("dsvm-ws", bridge, StringComparison.Ordinal); // matched by HostFirewall.Interfaces
    }

    [Fact]
    public void AWorkspaceJoinsItsSizesNetworkAndOnlyTheInternetOnePublishesAPort()
    {
        var backend = new DockerWorkspaceBackend(_client, new DockerBackendOptions(), new NoGpus());
        var internet = backend.CreateParameters(Request(WorkspaceNetwork.Internet), "c", nvidiaRuntime: false);
        Assert.Equal("dsvm-workspaces", internet.HostConfig.NetworkMode);
        Assert.Equal("127.0.0.1", internet.HostConfig.PortBindings["8888/tcp"][0].HostIP);
        var isolated = backend.CreateParameters(Request(WorkspaceNetwork.Isolated), "c", nvidiaRuntime: false);
        Assert.Equal("dsvm-isolated", isolated.HostConfig.NetworkMode);
        Assert.Null(isolated.HostConfig.PortBindings);
    }

    [Fact]
    public void HostSetupInstallsExactlyTheBackendsRules()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "OpenDSVM.slnx")))
        {
            dir = dir.Parent;
        }

        var script = File.ReadAllText(Path.Combine(dir!.FullName, "scripts", "host-setup.sh"));
        var start = script.IndexOf("<<'RULES'\n", StringComparison.Ordinal) + "<<'RULES'\n".Length;
        var end = script.IndexOf("RULES\n", start, StringComparison.Ordinal);
        Assert.Equal(HostFirewall.RestoreScript, script[start..end]);
        foreach (var jump in HostFirewall.Jumps)
        {
            Assert.Contains($"iptables -w -C {string.Join(' ', jump)} 2>/dev/null || iptables -w -I {jump[0]} 1 {string.Join(' ', jump[1..])}", script, StringComparison.Ordinal);
        }
    }
}
