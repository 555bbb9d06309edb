using System.Net.Sockets;
using System.Text;

namespace Dsvm.Hub.Tests;

/// <summary>Requests sent byte for byte over TCP: HttpClient would normalise these paths before sending them.</summary>
public sealed class PathTrickTests : HubTestBase
{
    private string _aliceToken = "";

    public override async Task InitializeAsync()
    {
        await base.InitializeAsync();
        var alice = await UserAsync("alice");
        _aliceToken = (await CreateTokenAsync(alice)).Str("token");
        await StartRunningAsync(alice.Http, "ws1");
        var bob = await UserAsync("bob");
        await StartRunningAsync(bob.Http, "ws2");
    }

    private FakeJupyterServer Bobs => World.Backend.ServerFor("bob", "ws2")!;

    [Fact]
    public async Task Dot_segments_cannot_walk_from_alices_workspace_into_bobs()
    {
        var (status, _) = await RawGetAsync("/user/alice/ws1/../../bob/ws2/api/x");
        Assert.Equal(403, status);
        Assert.DoesNotContain(Bobs.Requests, r => r.EndsWith("/api/x", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Encoded_slashes_are_400()
    {
        var (status, _) = await RawGetAsync("/user/alice/ws1%2F..%2F..%2Fbob/ws2/");
        Assert.Equal(400, status);
        (status, _) = await RawGetAsync("/user/alice/ws1%2f..%2f..%2fbob/ws2/api/x");
        Assert.Equal(400, status);
        Assert.DoesNotContain(Bobs.Requests, r => r.EndsWith("/api/x", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Encoded_dot_segments_are_resolved_before_the_owner_check()
    {
        var (status, _) = await RawGetAsync("/user/alice/ws1/%2e%2e/%2e%2e/bob/ws2/api/x");
        Assert.Equal(403, status);
        (status, _) = await RawGetAsync("/user/alice/ws1/%2E%2E/%2E%2E/bob/ws2/api/x");
        Assert.Equal(403, status);
        Assert.DoesNotContain(Bobs.Requests, r => r.EndsWith("/api/x", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Dot_segments_within_the_own_workspace_still_work()
    {
        var (status, response) = await RawGetAsync("/user/alice/ws1/api/../api/y");
        Assert.Equal(200, status);
        Assert.Contains("\"path\":\"/user/alice/ws1/api/y\"", response, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Names_are_case_sensitive_so_an_uppercase_owner_is_404()
    {
        var (status, _) = await RawGetAsync("/user/Alice/ws1/");
        Assert.Equal(404, status);
        (status, _) = await RawGetAsync("/user/alice/WS1/");
        Assert.Equal(404, status);
    }

    [Fact]
    public async Task Backslashes_are_400()
    {
        var (status, _) = await RawGetAsync("/user/alice/ws1\\..\\..\\bob\\ws2");
        Assert.Equal(400, status);
        (status, _) = await RawGetAsync("/user/alice/ws1/%5c..%5c..%5cbob%5cws2/api/x");
        Assert.Equal(400, status);
        Assert.DoesNotContain(Bobs.Requests, r => r.EndsWith("/api/x", StringComparison.Ordinal));
    }

    /// <summary>Sends one GET as alice (token header) and returns the status code and the whole response.</summary>
    private async Task<(int Status, string Response)> RawGetAsync(string target)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(15));
        using var tcp = new TcpClient();
        await tcp.ConnectAsync(Hub.Address.Host, Hub.Address.Port, timeout.Token);
        var stream = tcp.GetStream();
        var request = $"GET {target} HTTP/1.1\r\nHost: {Hub.Address.Authority}\r\nAuthorization: token {_aliceToken}\r\nConnection: close\r\n\r\n";
        await stream.WriteAsync(Encoding.ASCII.GetBytes(request), timeout.Token);
        using var ms = new MemoryStream();
        await stream.CopyToAsync(ms, timeout.Token);
        var response = Encoding.UTF8.GetString(ms.ToArray());
        var statusLine = response.Split("\r\n")[0];
        var parts = statusLine.Split(' ');
        Assert.True(parts.Length >= 2 && parts[0].StartsWith("HTTP/1.1", StringComparison.Ordinal), $"not an HTTP response: {response}");
        return (int.Parse(parts[1], System.Globalization.CultureInfo.InvariantCulture), response);
    }
}
