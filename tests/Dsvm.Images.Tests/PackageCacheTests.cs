using System.Net;
using System.Security.Cryptography;
using System.Text;
using Dsvm.Images;
using Dsvm.Testing;

namespace Dsvm.Images.Tests;

/// <summary>The build's package cache as apt sees it: an HTTP proxy on 127.0.0.1, with a fake mirror behind it.</summary>
public sealed class PackageCacheTests : IAsyncDisposable
{
    private const string Mirror = "http://deb.example.org/debian";
    private readonly TempDir _dir = new();
    private readonly FakeMirror _mirror = new();
    private readonly PackageCache _cache;
    private readonly HttpClient _apt;

    public PackageCacheTests()
    {
        _cache = PackageCache.Start(_dir.Path, [new Uri(Mirror)], _mirror);
        _apt = new HttpClient(new HttpClientHandler { Proxy = new WebProxy(_cache.ProxyUrl), UseProxy = true });
    }

    public async ValueTask DisposeAsync()
    {
        _apt.Dispose();
        await _cache.DisposeAsync();
        _dir.Dispose();
    }

    private sealed class FakeMirror : HttpMessageHandler
    {
        public List<string> Requests { get; } = [];
        public Dictionary<string, byte[]> Files { get; } = [];

        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            lock (Requests)
            {
                Requests.Add(request.RequestUri!.AbsolutePath);
            }

            return Task.FromResult(Files.TryGetValue(request.RequestUri!.AbsolutePath, out var body)
                ? new HttpResponseMessage(HttpStatusCode.OK) { Content = new ByteArrayContent(body) }
                : new HttpResponseMessage(HttpStatusCode.NotFound) { Content = new ByteArrayContent([]) });
        }
    }

    [Theory]
    [InlineData("unix:///var/run/docker.sock", true)]
    [InlineData("tcp://127.0.0.1:2375", true)]
    [InlineData("tcp://[::1]:2375", true)]
    [InlineData("tcp://10.0.5.7:2376", false)]
    [InlineData("tcp://build-box.example.org:2376", false)]
    public async Task Only_an_engine_on_this_machine_gets_the_cache_a_remote_one_goes_to_the_mirror(string engine, bool cached)
    {
        // A remote engine's build would look for the cache at its own 127.0.0.1 and fail every apt-get.
        await using var cache = PackageCache.StartFor(new Uri(engine), _dir.Path, [new Uri(Mirror)]);
        Assert.Equal(cached, cache is not null);
        Assert.Null(PackageCache.StartFor(new Uri(engine), null, [new Uri(Mirror)]));
    }

    [Fact]
    public async Task A_deb_is_fetched_from_the_mirror_once_then_served_from_the_cache()
    {
        const string deb = "/debian/pool/main/g/git/git_1%3a2.47.3-0+deb13u1_amd64.deb";
        _mirror.Files[deb] = Encoding.ASCII.GetBytes("a deb");

        var first = await _apt.GetByteArrayAsync(Mirror.Replace("/debian", "", StringComparison.Ordinal) + deb);
        var second = await _apt.GetByteArrayAsync(Mirror.Replace("/debian", "", StringComparison.Ordinal) + deb);

        Assert.Equal("a deb", Encoding.ASCII.GetString(first));
        Assert.Equal(first, second);
        Assert.Equal([deb], _mirror.Requests);
        Assert.Equal(1, _cache.Stats.Hits);
        Assert.Equal(1, _cache.Stats.Misses);
        Assert.True(File.Exists(Path.Combine(_dir.Path, "deb.example.org", "debs", "git_1%3a2.47.3-0+deb13u1_amd64.deb")));
    }

    [Fact]
    public async Task A_by_hash_index_is_cached_only_when_its_content_has_that_hash()
    {
        var good = Encoding.ASCII.GetBytes("Package: git\n");
        var goodPath = "/debian/dists/trixie/main/binary-amd64/by-hash/SHA256/" + Convert.ToHexStringLower(SHA256.HashData(good));
        var badPath = "/debian/dists/trixie/main/binary-amd64/by-hash/SHA256/" + new string('0', 64);
        _mirror.Files[goodPath] = good;
        _mirror.Files[badPath] = Encoding.ASCII.GetBytes("tampered");

        for (var i = 0; i < 2; i++)
        {
            await _apt.GetByteArrayAsync("http://deb.example.org" + goodPath);
            Assert.Equal("tampered", await _apt.GetStringAsync("http://deb.example.org" + badPath));
        }

        Assert.Single(_mirror.Requests, goodPath);
        Assert.False(File.Exists(Path.Combine(_dir.Path, "deb.example.org", "by-hash", new string('0', 64))));
        Assert.Equal(1, _cache.Stats.Hits);
    }

    [Fact]
    public async Task Mutable_indexes_and_other_hosts_pass_through_uncached()
    {
        _mirror.Files["/debian/dists/trixie/InRelease"] = Encoding.ASCII.GetBytes("signed");
        _mirror.Files["/simple/x.deb"] = Encoding.ASCII.GetBytes("elsewhere");

        Assert.Equal("signed", await _apt.GetStringAsync(Mirror + "/dists/trixie/InRelease"));
        Assert.Equal("signed", await _apt.GetStringAsync(Mirror + "/dists/trixie/InRelease"));
        Assert.Equal("elsewhere", await _apt.GetStringAsync("http://pypi.example.net/simple/x.deb"));
        Assert.Equal("elsewhere", await _apt.GetStringAsync("http://pypi.example.net/simple/x.deb"));

        Assert.Equal(4, _cache.Stats.PassedThrough);
        Assert.Equal(0, _cache.Stats.Hits);
        Assert.Equal(0, _cache.Stats.Misses);
        Assert.False(Directory.Exists(Path.Combine(_dir.Path, "pypi.example.net")));
    }
}
