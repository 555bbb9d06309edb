using System.Net;
using System.Security.Cryptography;
using System.Text;
using Dsvm.Core.Sizes;
using Dsvm.Core.Workspaces;
using k8s;
using k8s.Autorest;
using k8s.Models;
using Xunit.Abstractions;

namespace Dsvm.Kubernetes.Tests;

/// <summary>
/// The backend on a real cluster (KUBECONFIG): start a workspace pod, reach Jupyter through the API server's service
/// proxy, write to the home, stop, start with another size, find the home kept, delete everything.
/// </summary>
[Trait("Requires", "Kubernetes")]
public sealed class ClusterIntegrationTests(ITestOutputHelper output)
{
    private static readonly MachineSize Tiny = new("k8s-it-tiny", 0.5, 1, 0, SizeClass.General);
    private static readonly MachineSize Bigger = new("k8s-it-bigger", 1, 1.5, 0, SizeClass.General);

    [KubernetesFact]
    public async Task Workspace_StartReachStopResizeKeepHomeDelete()
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromMinutes(8));
        var ct = cts.Token;
        var ns = KubernetesCluster.Namespace;
        using var client = new k8s.Kubernetes(KubernetesClientConfiguration.BuildConfigFromConfigFile(KubernetesCluster.Kubeconfig!));
        var createdNamespace = await EnsureNamespaceAsync(client, ns, ct);
        var options = new KubernetesBackendOptions { Namespace = ns, StorageClass = KubernetesCluster.StorageClass, HomeSize = "1Gi" };
        var backend = new KubernetesWorkspaceBackend(client, options);
        var id = "ws-" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(4));
        var request = new WorkspaceStartRequest
        {
            Id = id,
            Name = "k8sit",
            Owner = "test",
            Image = KubernetesCluster.Image!,
            Size = Tiny,
            Token = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(32)),
            HomeVolume = $"dsvm-home-test-k8sit-{id}",
            BaseUrl = "/user/test/k8sit/",
        };
        var progress = new Progress<WorkspaceProgress>(p => output.WriteLine(p.Message));
        try
        {
            var launch = await backend.StartAsync(request, progress, ct);
            Assert.Equal(new Uri($"http://dsvm-{id}.{ns}.svc:8888/"), launch.Endpoint);
            Assert.True((await backend.GetStatusAsync(launch.Handle, ct)).Running);
            await WaitForJupyterAsync(client, ns, id, request.BaseUrl, ct);

            Assert.Equal("", await ExecAsync(client, ns, id, ["sh", "-c", "echo kept > /home/dsvm/marker"], ct));
            Assert.Equal("65530", (await ExecAsync(client, ns, id, ["id", "-u"], ct)).Trim());
            var claimUid = (await client.CoreV1.ReadNamespacedPersistentVolumeClaimAsync(request.HomeVolume, ns, cancellationToken: ct)).Metadata.Uid;

            await backend.StopAsync(launch.Handle, ct);
            Assert.False((await backend.GetStatusAsync(launch.Handle, ct)).Exists);
            Assert.True(await backend.HomeExistsAsync(request.HomeVolume, ct));

            var resized = await backend.StartAsync(request with { Size = Bigger }, progress, ct);
            await WaitForJupyterAsync(client, ns, id, request.BaseUrl, ct);
            Assert.Equal("kept", (await ExecAsync(client, ns, id, ["cat", "/home/dsvm/marker"], ct)).Trim());
            Assert.Equal(claimUid, (await client.CoreV1.ReadNamespacedPersistentVolumeClaimAsync(request.HomeVolume, ns, cancellationToken: ct)).Metadata.Uid);
            var pod = await client.CoreV1.ReadNamespacedPodAsync($"dsvm-{id}", ns, cancellationToken: ct);
            Assert.Equal("1", pod.Spec.Containers[0].Resources.Limits["cpu"].ToString());
            Assert.Equal("1536Mi", pod.Spec.Containers[0].Resources.Limits["memory"].ToString());
            Assert.Contains(await backend.GetLogsAsync(resized.Handle, 50, ct), "Jupyter", StringComparison.OrdinalIgnoreCase);

            var found = new List<ManagedResource>();
            await foreach (var r in backend.ListManagedAsync(ct))
            {
                found.Add(r);
            }

            Assert.Contains(found, r => r.WorkspaceId == id && r.Running);

            await backend.DeleteAsync(resized.Handle, request.HomeVolume, keepHome: false, ct);
            Assert.False((await backend.GetStatusAsync(resized.Handle, ct)).Exists);
            Assert.Empty((await client.CoreV1.ListNamespacedServiceAsync(ns, labelSelector: $"io.opendsvm.workspace={id}", cancellationToken: ct)).Items);
            Assert.Empty((await client.CoreV1.ListNamespacedSecretAsync(ns, labelSelector: $"io.opendsvm.workspace={id}", cancellationToken: ct)).Items);
        }
        finally
        {
            await backend.DeleteAsync(new WorkspaceHandle(id, backend.Name, System.Text.Json.JsonDocument.Parse("{}").RootElement), request.HomeVolume, keepHome: false, CancellationToken.None);
            if (createdNamespace)
            {
                await client.CoreV1.DeleteNamespaceAsync(ns, cancellationToken: CancellationToken.None);
            }
        }
    }

    private static async Task<bool> EnsureNamespaceAsync(IKubernetes client, string ns, CancellationToken ct)
    {
        try
        {
            await client.CoreV1.CreateNamespaceAsync(new V1Namespace { Metadata = new V1ObjectMeta { Name = ns } }, cancellationToken: ct);
            return true;
        }
        catch (HttpOperationException ex) when (ex.Response.StatusCode == HttpStatusCode.Conflict)
        {
            return false;
        }
    }

    /// <summary>
    /// Jupyter through the API server's service proxy (/api/v1/namespaces/NS/services/NAME:8888/proxy/...). The API
    /// server drops the Authorization header after authenticating the client, so this asks Jupyter's unauthenticated
    /// <c>GET {base}api</c> (its version) and checks that <c>{base}api/status</c> without the token is refused.
    /// </summary>
    private static async Task WaitForJupyterAsync(IKubernetes client, string ns, string id, string baseUrl, CancellationToken ct)
    {
        var service = $"dsvm-{id}:8888";
        while (true)
        {
            try
            {
                using var stream = await client.CoreV1.ConnectGetNamespacedServiceProxyWithPathAsync(service, ns, baseUrl.TrimStart('/') + "api", cancellationToken: ct);
                using var reader = new StreamReader(stream);
                Assert.Contains("\"version\"", await reader.ReadToEndAsync(ct), StringComparison.Ordinal);
                break;
            }
            catch (HttpOperationException ex) when (ex.Response.StatusCode is HttpStatusCode.ServiceUnavailable or HttpStatusCode.BadGateway or HttpStatusCode.NotFound)
            {
                await Task.Delay(500, ct);
            }
        }

        var refused = await Assert.ThrowsAsync<HttpOperationException>(() =>
            client.CoreV1.ConnectGetNamespacedServiceProxyWithPathAsync(service, ns, baseUrl.TrimStart('/') + "api/status", cancellationToken: ct));
        Assert.Equal(HttpStatusCode.Forbidden, refused.Response.StatusCode);
    }

    private static async Task<string> ExecAsync(IKubernetes client, string ns, string id, string[] command, CancellationToken ct)
    {
        var stdout = new StringBuilder();
        await client.NamespacedPodExecAsync($"dsvm-{id}", ns, KubernetesObjects.ContainerName, command, tty: false, async (_, output, _) =>
        {
            using var reader = new StreamReader(output);
            stdout.Append(await reader.ReadToEndAsync(ct));
        }, ct);
        return stdout.ToString();
    }
}
