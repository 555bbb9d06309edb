using Dsvm.Core;
using Dsvm.Images.Registry;
using Dsvm.Testing;

namespace Dsvm.Images.Tests;

public sealed class RegistryParsingTests
{
    [Theory]
    [InlineData("127.0.0.1:5000", "127.0.0.1:5000", "http://127.0.0.1:5000/")]
    [InlineData("localhost:5000", "localhost:5000", "http://localhost:5000/")]
    [InlineData("registry.example.org", "registry.example.org", "https://registry.example.org/")]
    [InlineData("10.0.5.1:5000", "10.0.5.1:5000", "https://10.0.5.1:5000/")]
    [InlineData("http://10.0.5.1:5000/", "10.0.5.1:5000", "http://10.0.5.1:5000/")]
    [InlineData("HTTPS://Registry.Example.org:8443", "registry.example.org:8443", "https://registry.example.org:8443/")]
    public void Registry_addresses_parse_with_tls_except_on_loopback(string input, string host, string uri)
    {
        var a = RegistryAddress.Parse(input);
        Assert.Equal(host, a.Host);
        Assert.Equal(uri, a.BaseUri.ToString());
    }

    [Theory]
    [InlineData("")]
    [InlineData("myregistry")]
    [InlineData("127.0.0.1:5000/dsvm")]
    [InlineData("user:pw@127.0.0.1:5000")]
    [InlineData("127.0.0.1:99999")]
    [InlineData("127.0.0.1:0")]
    [InlineData("ftp://127.0.0.1:5000")]
    [InlineData("-bad.example.org")]
    [InlineData("127.0.0.1:5000 --insecure")]
    public void Bad_registry_addresses_are_one_clear_usage_error(string input)
    {
        var ex = Assert.Throws<UsageException>(() => RegistryAddress.Parse(input));
        Assert.Contains("is not a registry address", ex.Message, StringComparison.Ordinal);
        Assert.DoesNotContain('\n', ex.Message);
    }

    [Fact]
    public void References_name_the_dsvm_namespace_and_pin_by_digest()
    {
        var a = RegistryAddress.Parse("127.0.0.1:5000");
        var digest = "sha256:" + new string('a', 64);
        Assert.Equal("127.0.0.1:5000/dsvm/minimal:abc", a.ByTag("minimal", "abc"));
        Assert.Equal($"127.0.0.1:5000/dsvm/minimal@{digest}", a.ByDigest("minimal", digest));
        Assert.Throws<ArgumentException>(() => a.ByDigest("minimal", "sha256:xyz"));
        Assert.Throws<ArgumentException>(() => a.ByDigest("minimal", "latest"));
    }

    private const string ConfigDigest = "sha256:1111111111111111111111111111111111111111111111111111111111111111";

    [Fact]
    public void Docker_schema2_and_oci_manifests_name_their_config()
    {
        var docker = RegistryManifest.Parse(
            $$"""{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{"digest":"{{ConfigDigest}}"},"layers":[]}""", null);
        Assert.Equal(ConfigDigest, docker.ConfigDigest);
        Assert.False(docker.IsIndex);

        // OCI may leave mediaType out of the body: the Content-Type says it, or the shape does.
        var oci = RegistryManifest.Parse($$$"""{"schemaVersion":2,"config":{"digest":"{{{ConfigDigest}}}"}}""", "application/vnd.oci.image.manifest.v1+json");
        Assert.Equal(RegistryManifest.OciManifest, oci.MediaType);
        var bare = RegistryManifest.Parse($$$"""{"schemaVersion":2,"config":{"digest":"{{{ConfigDigest}}}"}}""", null);
        Assert.Equal(ConfigDigest, bare.ConfigDigest);
    }

    [Fact]
    public void An_index_picks_the_linux_entry_of_this_architecture()
    {
        var index = RegistryManifest.Parse(
            """
            {"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[
              {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:2222222222222222222222222222222222222222222222222222222222222222","platform":{"os":"linux","architecture":"arm64"}},
              {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:3333333333333333333333333333333333333333333333333333333333333333","platform":{"os":"linux","architecture":"amd64"}},
              {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:4444444444444444444444444444444444444444444444444444444444444444","platform":{"os":"unknown","architecture":"unknown"}},
              {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"not-a-digest"}
            ]}
            """, null);
        Assert.True(index.IsIndex);
        Assert.Equal(3, index.Manifests.Count);
        Assert.Equal("sha256:3333333333333333333333333333333333333333333333333333333333333333", index.PickPlatform("amd64")!.Digest);
        Assert.Equal("sha256:2222222222222222222222222222222222222222222222222222222222222222", index.PickPlatform("arm64")!.Digest);
        Assert.Equal("sha256:2222222222222222222222222222222222222222222222222222222222222222", index.PickPlatform("riscv64")!.Digest);
    }

    [Theory]
    [InlineData("""{"schemaVersion":1,"mediaType":"application/vnd.docker.distribution.manifest.v1+prettyjws"}""", "not supported")]
    [InlineData("""{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"digest":"md5:abc"}}""", "without a sha256 config digest")]
    [InlineData("""{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}""", "without a sha256 config digest")]
    [InlineData("[1,2]", "not a JSON object")]
    [InlineData("{", "not JSON")]
    public void Bad_manifests_are_registry_errors(string body, string expected)
    {
        var ex = Assert.Throws<RegistryException>(() => RegistryManifest.Parse(body, null));
        Assert.Contains(expected, ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Labels_come_from_the_image_config()
    {
        var (labels, created) = RegistryManifest.ParseConfig(
            """{"created":"2026-12-06T01:02:03Z","config":{"Labels":{"io.opendsvm.gpu":"optional","io.opendsvm.checks.passed":"3","weird":7}}}""");
        Assert.Equal("optional", labels["io.opendsvm.gpu"]);
        Assert.Equal("3", labels["io.opendsvm.checks.passed"]);
        Assert.False(labels.ContainsKey("weird"));
        Assert.Equal(new DateTimeOffset(2026, 12, 6, 1, 2, 3, TimeSpan.Zero), created);
        Assert.Empty(RegistryManifest.ParseConfig("""{"config":{"Labels":null}}""").Labels);
        Assert.Throws<RegistryException>(() => RegistryManifest.ParseConfig("nope"));
    }

    [Fact]
    public void The_pushed_digest_is_read_from_docker_push_output()
    {
        var d = "sha256:" + new string('b', 64);
        Assert.Equal(d, RegistryPusher.PushedDigest($"The push refers to repository [127.0.0.1:5000/dsvm/minimal]\n5f70bf18a086: Pushed\nabc: digest: {d} size: 1570\n"));
        Assert.Null(RegistryPusher.PushedDigest("error parsing HTTP 404 response body"));
    }

    [Fact]
    [System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
    public void Credentials_file_must_be_private_and_well_formed()
    {
        using var dir = new TempDir();
        var registry = RegistryAddress.Parse("127.0.0.1:5000");
        var file = dir.Write("registries.json", """{"127.0.0.1:5000": {"username": "ci", "password": "s3cret"}, "other.example.org": {"username": "x", "password": "y"}}""");
        File.SetUnixFileMode(file, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
        var open = Assert.Throws<UsageException>(() => RegistryCredentialStore.FromFile(file, registry));
        Assert.Contains("chmod 600", open.Message, StringComparison.Ordinal);

        File.SetUnixFileMode(file, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        var c = RegistryCredentialStore.FromFile(file, registry);
        Assert.Equal(new RegistryLogin("ci", "s3cret"), c);
        Assert.DoesNotContain("s3cret", c!.ToString(), StringComparison.Ordinal);
        Assert.Null(RegistryCredentialStore.FromFile(file, RegistryAddress.Parse("127.0.0.1:5001")));

        File.WriteAllText(file, """{"127.0.0.1:5000": {"username": "ci", "passwd": "typo"}}""");
        var bad = Assert.Throws<UsageException>(() => RegistryCredentialStore.FromFile(file, registry));
        Assert.Contains(file, bad.Message, StringComparison.Ordinal);
        File.WriteAllText(file, """{"127.0.0.1:5000": {"username": "ci"}}""");
        Assert.Contains("both \"username\" and \"password\"", Assert.Throws<UsageException>(() => RegistryCredentialStore.FromFile(file, registry)).Message, StringComparison.Ordinal);
    }
}
