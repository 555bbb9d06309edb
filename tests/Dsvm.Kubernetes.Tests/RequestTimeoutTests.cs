using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using Dsvm.Core;
using Dsvm.Core.Workspaces;

namespace Dsvm.Kubernetes.Tests;

/// <summary>
/// <c>request-timeout</c> of the kubernetes backend: parsed with located errors, and an API server that accepts the
/// connection and never answers (a listener that never reads) is one not-ready error after it, naming the API server
/// and the timeout, instead of KubernetesClient's 100 s and a bare cancellation.
/// </summary>
public sealed class RequestTimeoutTests : IDisposable
{
    private const string File = "/etc/dsvm/backends.yaml";

    private readonly string _dir = Directory.CreateTempSubdirectory("dsvm-k8s-hang-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static KubernetesBackendOptions Parse(string settings)
    {
        var registry = new BackendRegistry().AddKubernetesBackend();
        var config = BackendConfig.Parse($"backends:\n  kubernetes:\n    namespace: dsvm\n{settings}", File, registry);
        return KubernetesBackendRegistration.Options(Assert.Single(config.Backends));
    }

    [Fact]
    public void Without_the_setting_it_is_30_s() => Assert.Equal(TimeSpan.FromSeconds(30), Parse("").RequestTimeout);

    [Fact]
    public void A_duration_is_read_with_its_unit() => Assert.Equal(TimeSpan.FromSeconds(90), Parse("    request-timeout: 1.5m\n").RequestTimeout);

    [Theory]
    [InlineData("0")]
    [InlineData("never")]
    public void Anything_but_a_positive_finite_duration_is_a_located_error(string value)
    {
        var ex = Assert.Throws<SpecValidationException>(() => Parse($"    request-timeout: {value}\n"));
        Assert.StartsWith($"{File}:4:22: backends.kubernetes.request-timeout: '{value}' is not a duration above 0", Assert.Single(ex.Errors).ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_hung_API_server_is_a_not_ready_error_naming_it_and_the_timeout()
    {
        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        // Connections wait in the backlog, accepted by the kernel and never answered: a hung API server.
        listener.Listen(64);
        var port = ((IPEndPoint)listener.LocalEndPoint!).Port;
        var kubeconfig = Path.Combine(_dir, "kubeconfig");
        await System.IO.File.WriteAllTextAsync(kubeconfig, $$"""
            apiVersion: v1
            kind: Config
            clusters:
            - name: hung
              cluster: { server: "http://127.0.0.1:{{port}}" }
            users:
            - name: nobody
              user: { token: "not-checked" }
            contexts:
            - name: hung
              context: { cluster: hung, user: nobody }
            current-context: hung
            """);
        var backend = new KubernetesWorkspaceBackend(new KubernetesBackendOptions { KubeconfigPath = kubeconfig, RequestTimeout = TimeSpan.FromSeconds(1) });
        var handle = new WorkspaceHandle("ws-0123456789ab", "kubernetes", JsonSerializer.SerializeToElement(new { pod = "dsvm-ws-0123456789ab" }));

        var ex = await Assert.ThrowsAsync<EnvironmentNotReadyException>(() => backend.GetStatusAsync(handle, CancellationToken.None));
        Assert.True(ex.Message.StartsWith($"the Kubernetes API server at http://127.0.0.1:{port}/ is unreachable: no answer within 1 s; ", StringComparison.Ordinal), ex.Message);
        Assert.Contains("raise request-timeout", ex.Message, StringComparison.Ordinal);

        // The caller's own cancellation stays a cancellation.
        using var cancelled = new CancellationTokenSource(TimeSpan.FromMilliseconds(200));
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => backend.GetStatusAsync(handle, cancelled.Token));
    }
}
