using Dsvm.Core;
using Dsvm.Images.Registry;
using Dsvm.Testing;

namespace Dsvm.Images.Tests;

/// <summary>The registry client against a real registry process (no Docker engine: images are uploaded over HTTP).</summary>
public sealed class RegistryClientTests
{
    private static readonly Dictionary<string, string> Labels = new()
    {
        ["io.opendsvm.environment"] = "minimal",
        ["io.opendsvm.description"] = "Small test environment",
        ["io.opendsvm.gpu"] = "none",
    };

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Lists_dsvm_repositories_and_reads_labels_of_oci_and_docker_manifests(bool oci)
    {
        await using var registry = await RegistryProcess.StartAsync();
        var digest = await registry.UploadImageAsync("dsvm/minimal", "latest", Labels, oci);
        await registry.UploadImageAsync("other/thing", "latest", Labels, oci);
        using var client = new RegistryClient(RegistryAddress.Parse(registry.Host), null);

        Assert.Equal(["dsvm/minimal"], await client.ListRepositoriesAsync("dsvm/", CancellationToken.None));
        Assert.Equal(["latest"], await client.ListTagsAsync("dsvm/minimal", CancellationToken.None));
        var image = await client.GetImageAsync("dsvm/minimal", "latest", CancellationToken.None);
        Assert.Equal(digest, image.Digest);
        Assert.Equal("Small test environment", image.Labels["io.opendsvm.description"]);
        Assert.True(image.SizeBytes > 0);

        // By digest, the same image; a digest the registry does not have is a clear error.
        Assert.Equal(digest, (await client.GetImageAsync("dsvm/minimal", digest, CancellationToken.None)).Digest);
        var missing = await Assert.ThrowsAsync<RegistryException>(() => client.GetImageAsync("dsvm/minimal", "sha256:" + new string('0', 64), CancellationToken.None));
        Assert.Contains("404", missing.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Basic_auth_uses_the_configured_credentials_and_says_when_they_are_missing_or_wrong()
    {
        await using var registry = await RegistryProcess.StartAsync(("ci", "correct horse"));
        await registry.UploadImageAsync("dsvm/minimal", "latest", Labels);
        var address = RegistryAddress.Parse(registry.Host);

        using (var good = new RegistryClient(address, new RegistryLogin("ci", "correct horse")))
        {
            Assert.Equal(["dsvm/minimal"], await good.ListRepositoriesAsync("dsvm/", CancellationToken.None));
            Assert.Equal("none", (await good.GetImageAsync("dsvm/minimal", "latest", CancellationToken.None)).Labels["io.opendsvm.gpu"]);
        }

        using (var none = new RegistryClient(address, null))
        {
            var ex = await Assert.ThrowsAsync<RegistryException>(() => none.PingAsync(CancellationToken.None));
            Assert.Contains("requires credentials", ex.Message, StringComparison.Ordinal);
        }

        using (var wrong = new RegistryClient(address, new RegistryLogin("ci", "wrong")))
        {
            var ex = await Assert.ThrowsAsync<RegistryException>(() => wrong.ListRepositoriesAsync(null, CancellationToken.None));
            Assert.Contains("refused the credentials of user 'ci'", ex.Message, StringComparison.Ordinal);
            Assert.DoesNotContain("wrong", ex.Message.Replace("'ci'", "", StringComparison.Ordinal), StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task An_unreachable_registry_is_one_clear_error()
    {
        int port;
        await using (var registry = await RegistryProcess.StartAsync())
        {
            port = registry.Port;
        }

        using var client = new RegistryClient(RegistryAddress.Parse($"127.0.0.1:{port}"), null);
        var ex = await Assert.ThrowsAsync<RegistryException>(() => client.PingAsync(CancellationToken.None));
        Assert.StartsWith($"registry 127.0.0.1:{port} is unreachable", ex.Message, StringComparison.Ordinal);
        Assert.DoesNotContain('\n', ex.Message);
    }
}
