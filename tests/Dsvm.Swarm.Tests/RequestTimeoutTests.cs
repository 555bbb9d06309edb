using System.Net.Sockets;
using System.Text.Json;
using Dsvm.Core;
using Dsvm.Core.Workspaces;

namespace Dsvm.Swarm.Tests;

/// <summary>
/// <c>request-timeout</c> of the swarm backend: parsed and checked with located errors, and a manager that accepts the
/// connection and never answers (an in-process socket standing in for a hung dockerd) is one not-ready error naming
/// the manager's endpoint and the timeout.
/// </summary>
public sealed class RequestTimeoutTests : IDisposable
{
    private const string File = "/etc/dsvm/backends.yaml";

    private readonly string _dir = Directory.CreateTempSubdirectory("dsvm-hang-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static SwarmBackendOptions Parse(string settings)
    {
        var registry = new BackendRegistry().AddSwarmBackend();
        var config = BackendConfig.Parse($"backends:\n  swarm:\n    manager: tcp://10.0.0.2:2376\n{settings}", File, registry);
        return SwarmBackendRegistration.Options(Assert.Single(config.Backends));
    }

    [Fact]
    public void Without_the_setting_it_is_30_s() => Assert.Equal(TimeSpan.FromSeconds(30), Parse("").RequestTimeout);

    [Fact]
    public void A_duration_is_read_with_its_unit() => Assert.Equal(TimeSpan.FromMinutes(2), Parse("    request-timeout: 2m\n").RequestTimeout);

    [Theory]
    [InlineData("0")]
    [InlineData("-5s")]
    [InlineData("forever")]
    [InlineData("2d")]
    public void Anything_but_a_positive_finite_duration_is_a_located_error(string value)
    {
        var ex = Assert.Throws<SpecValidationException>(() => Parse($"    request-timeout: {value}\n"));
        Assert.StartsWith($"{File}:4:22: backends.swarm.request-timeout: '{value}' is not a duration above 0", Assert.Single(ex.Errors).ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_hung_manager_is_a_not_ready_error_naming_its_endpoint_and_the_timeout()
    {
        var path = Path.Combine(_dir, "docker.sock");
        using var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        listener.Bind(new UnixDomainSocketEndPoint(path));
        // Connections wait in the backlog, accepted by the kernel and never answered: a frozen dockerd.
        listener.Listen(64);
        var manager = new Uri("unix://" + path);
        using var backend = new SwarmWorkspaceBackend(new SwarmBackendOptions { ManagerEndpoint = manager, RequestTimeout = TimeSpan.FromSeconds(1) });
        var handle = new WorkspaceHandle("ws-0123456789ab", "swarm", JsonSerializer.SerializeToElement(new { service = "dsvm-ws-0123456789ab" }));

        var ex = await Assert.ThrowsAsync<EnvironmentNotReadyException>(() => backend.GetStatusAsync(handle, CancellationToken.None));
        Assert.StartsWith($"the Docker engine at {manager} (swarm manager) did not answer within 1 s; ", ex.Message, StringComparison.Ordinal);
        Assert.Contains("raise request-timeout", ex.Message, StringComparison.Ordinal);
        var health = await backend.DescribeAsync(CancellationToken.None);
        Assert.False(health.Healthy);
        Assert.Contains("did not answer within 1 s", health.Detail, StringComparison.Ordinal);
    }
}
