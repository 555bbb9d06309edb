using System.Net;
using System.Net.Http.Json;

namespace Dsvm.Hub.Tests;

/// <summary>X-Forwarded-* from an address that is not a trusted proxy are ignored, and the hub says so once (issue 9, finding 6).</summary>
public sealed class UntrustedForwardedHeadersWarningTests : HubTestBase
{
    internal override HubOptions Options(HubOptions defaults) => defaults with { MaxFailedLogins = 2, TrustedProxies = ["192.0.2.10"] };

    private static HttpRequestMessage Login(string forwardedFor, string password)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, "api/v1/login") { Content = JsonContent.Create(new { name = HubWorld.AdminName, password }) };
        request.Headers.Add("X-Forwarded-For", forwardedFor);
        request.Headers.Add("X-Forwarded-Proto", "https");
        return request;
    }

    [Fact]
    public async Task Forwarded_headers_from_an_untrusted_address_are_ignored_and_warned_about_once()
    {
        var c = Hub.NewClient();
        for (var i = 0; i < 3; i++)
        {
            using var request = Login($"203.0.113.{i + 1}", "wrong-password");
            var r = await c.Http.SendAsync(request);
            Assert.True(r.StatusCode is HttpStatusCode.Unauthorized or HttpStatusCode.TooManyRequests, r.StatusCode.ToString());
        }

        // Every try counted as 127.0.0.1, whatever it claimed.
        using (var request = Login("198.51.100.1", HubWorld.AdminPassword))
        {
            var r = await c.Http.SendAsync(request);
            Assert.Equal(HttpStatusCode.TooManyRequests, r.StatusCode);
        }

        var warnings = World.Logs.Lines.Where(l => l.Contains("X-Forwarded", StringComparison.Ordinal)).ToList();
        var warning = Assert.Single(warnings);
        Assert.Contains("127.0.0.1", warning, StringComparison.Ordinal);
        Assert.Contains("TrustedProxies", warning, StringComparison.Ordinal);
    }
}

/// <summary>From a trusted proxy the headers are believed and nothing is logged.</summary>
public sealed class TrustedForwardedHeadersTests : HubTestBase
{
    internal override HubOptions Options(HubOptions defaults) => defaults with { TrustedProxies = ["127.0.0.1"] };

    [Fact]
    public async Task Forwarded_headers_from_a_trusted_proxy_raise_no_warning()
    {
        var c = Hub.NewClient();
        using var request = new HttpRequestMessage(HttpMethod.Post, "api/v1/login") { Content = JsonContent.Create(new { name = HubWorld.AdminName, password = HubWorld.AdminPassword }) };
        request.Headers.Add("X-Forwarded-For", "198.51.100.1");
        await c.Http.SendAsync(request).Expect(HttpStatusCode.OK);
        Assert.DoesNotContain(World.Logs.Lines, l => l.Contains("X-Forwarded", StringComparison.Ordinal));
    }
}
