using Docker.DotNet;
using Docker.DotNet.Models;
using Dsvm.Core.Sizes;
using Dsvm.Core.Workspaces;

namespace Dsvm.Docker.Tests;

public sealed class CreateParametersTests : IDisposable
{
    private const string Token = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    // Never called: CreateParameters only builds the definition.
    private readonly DockerClient _client = new DockerClientConfiguration(new Uri("unix:///nonexistent.sock")).CreateClient();

    public void Dispose() => _client.Dispose();

    private sealed class NoGpus : IGpuDetector
    {
        public Task<IReadOnlyList<GpuInfo>> DetectAsync(CancellationToken ct) => Task.FromResult<IReadOnlyList<GpuInfo>>([]);
    }

    private static WorkspaceStartRequest Request(MachineSize? size = null) => new()
    {
        Id = "ws-0123456789ab",
        Name = "proj",
        Owner = "alice",
        Image = "dsvm/datascience:latest",
        Size = size ?? new MachineSize("medium", 2, 4, 0, SizeClass.General),
        Token = Token,
        HomeVolume = "dsvm-home-alice-proj",
        BaseUrl = "/user/alice/proj/",
        Gpu = false,
        Labels = new Dictionary<string, string>
        {
            ["io.opendsvm.owner"] = "alice",
            ["io.opendsvm.name"] = "proj",
            ["io.opendsvm.environment"] = "datascience",
            ["io.opendsvm.size"] = "medium",
        },
    };

    private CreateContainerParameters Create(WorkspaceStartRequest? request = null, DockerBackendOptions? options = null) =>
        new DockerWorkspaceBackend(_client, options ?? new DockerBackendOptions(), new NoGpus())
            .CreateParameters(request ?? Request(), "dsvm-alice-proj", nvidiaRuntime: false);

    [Fact]
    public void Limits_ComeFromTheSize()
    {
        var p = Create(Request(new MachineSize("odd", 1.5, 6, 0, SizeClass.General)));

        Assert.Equal(1_500_000_000, p.HostConfig.NanoCPUs);
        Assert.Equal(6L * 1024 * 1024 * 1024, p.HostConfig.Memory);
        // No swap beyond the memory limit.
        Assert.Equal(p.HostConfig.Memory, p.HostConfig.MemorySwap);
        Assert.Equal(1024, p.HostConfig.PidsLimit);
        Assert.True(p.HostConfig.ShmSize is > 0 and <= 2L << 30);
    }

    [Fact]
    public void PidsLimit_ComesFromTheOptions()
    {
        var p = Create(options: new DockerBackendOptions { PidsLimit = 77 });

        Assert.Equal(77, p.HostConfig.PidsLimit);
    }

    [Fact]
    public void Container_IsUnprivilegedAndLockedDown()
    {
        var p = Create();

        Assert.Equal(["ALL"], p.HostConfig.CapDrop);
        Assert.Contains("no-new-privileges", p.HostConfig.SecurityOpt);
        Assert.Equal("65530:65530", p.User);
        Assert.False(p.HostConfig.Privileged);
        Assert.True(p.HostConfig.CapAdd is null || p.HostConfig.CapAdd.Count == 0);
        Assert.Equal(RestartPolicyKind.No, p.HostConfig.RestartPolicy.Name);
    }

    [Fact]
    public void Jupyter_IsPublishedOnLoopbackOnlyOnAnEnginePickedPort()
    {
        var p = Create();

        Assert.True(p.ExposedPorts.ContainsKey("8888/tcp"));
        var binding = Assert.Single(Assert.Single(p.HostConfig.PortBindings).Value);
        Assert.Equal("8888/tcp", Assert.Single(p.HostConfig.PortBindings).Key);
        Assert.Equal("127.0.0.1", binding.HostIP);
        Assert.Equal("", binding.HostPort);
        Assert.False(p.HostConfig.PublishAllPorts);
    }

    [Fact]
    public void Home_IsTheNamedVolumeAtHomeDsvm()
    {
        var p = Create();

        var mount = Assert.Single(p.HostConfig.Mounts);
        Assert.Equal("volume", mount.Type);
        Assert.Equal("dsvm-home-alice-proj", mount.Source);
        Assert.Equal("/home/dsvm", mount.Target);
        Assert.True(p.HostConfig.Binds is null || p.HostConfig.Binds.Count == 0);
    }

    [Fact]
    public void Labels_MarkTheContainerAsManagedAndKeepTheRequestsLabels()
    {
        var p = Create();

        Assert.Equal("true", p.Labels["io.opendsvm.managed"]);
        Assert.Equal("ws-0123456789ab", p.Labels["io.opendsvm.workspace"]);
        Assert.Equal("alice", p.Labels["io.opendsvm.owner"]);
        Assert.Equal("proj", p.Labels["io.opendsvm.name"]);
        Assert.Equal("datascience", p.Labels["io.opendsvm.environment"]);
        Assert.Equal("medium", p.Labels["io.opendsvm.size"]);
        Assert.Equal(6, p.Labels.Count);
    }

    [Fact]
    public void ManagedLabels_CannotBeOverriddenByTheRequest()
    {
        var request = Request() with
        {
            Labels = new Dictionary<string, string> { ["io.opendsvm.managed"] = "false", ["io.opendsvm.workspace"] = "other" },
        };

        var p = Create(request);

        Assert.Equal("true", p.Labels["io.opendsvm.managed"]);
        Assert.Equal("ws-0123456789ab", p.Labels["io.opendsvm.workspace"]);
    }

    [Fact]
    public void Token_IsInTheEnvironmentOnly()
    {
        var p = Create();

        Assert.Contains($"JUPYTER_TOKEN={Token}", p.Env);
        Assert.DoesNotContain(p.Cmd ?? [], a => a.Contains(Token, StringComparison.Ordinal));
        Assert.DoesNotContain(p.Entrypoint ?? [], a => a.Contains(Token, StringComparison.Ordinal));
        Assert.DoesNotContain(Token, p.Name, StringComparison.Ordinal);
        Assert.DoesNotContain(p.Labels.Values, v => v.Contains(Token, StringComparison.Ordinal));
    }

    [Fact]
    public void Environment_TellsTheImageWhereToServe()
    {
        var p = Create();

        Assert.Contains("DSVM_BASE_URL=/user/alice/proj/", p.Env);
        Assert.Contains("DSVM_PORT=8888", p.Env);
        Assert.Contains("DSVM_WORKSPACE=proj", p.Env);
        Assert.Contains("DSVM_SIZE=medium", p.Env);
        Assert.Contains("HOME=/home/dsvm", p.Env);
    }

    [Fact]
    public void NoGpu_HidesCudaDevicesAndMapsNothing()
    {
        var p = Create();

        Assert.Contains("CUDA_VISIBLE_DEVICES=", p.Env);
        Assert.True(p.HostConfig.DeviceRequests is null || p.HostConfig.DeviceRequests.Count == 0);
        Assert.True(p.HostConfig.Devices is null || p.HostConfig.Devices.Count == 0);
        Assert.DoesNotContain(p.Env, e => e.StartsWith("LD_LIBRARY_PATH=", StringComparison.Ordinal));
    }

    [Fact]
    public void Identity_NameImageAndHostname()
    {
        var p = Create();

        Assert.Equal("dsvm-alice-proj", p.Name);
        Assert.Equal("dsvm/datascience:latest", p.Image);
        Assert.Equal("proj", p.Hostname);
    }

    [Fact]
    public void Env_CarriesTheSizesCpusRoundedDown()
    {
        Assert.Contains("DSVM_CPUS=1", Create(Request(new MachineSize("odd", 1.5, 6, 0, SizeClass.General))).Env);
        Assert.Contains("DSVM_CPUS=1", Create(Request(new MachineSize("half", 0.5, 1, 0, SizeClass.General))).Env);
        Assert.Contains("DSVM_CPUS=8", Create(Request(new MachineSize("xlarge", 8, 32, 0, SizeClass.General))).Env);
    }
}
