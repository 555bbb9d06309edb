using System.Net;
using System.Net.Http.Headers;
using Dsvm.Hub.Auth;

namespace Dsvm.Hub.Tests;

/// <summary>What the proxy does to Jupyter's answers in single-origin mode: cookies stay in the workspace, pages lose the token.</summary>
public sealed class ProxyResponseTests : HubTestBase
{
    private HubClient _alice = null!;

    public override async Task InitializeAsync()
    {
        await base.InitializeAsync();
        World.Backend.LabHtml = "<html><script>window.PageConfig = {\"token\": \"{token}\"};</script><p>lab</p></html>";
        _alice = await UserAsync("alice");
        await StartRunningAsync(_alice.Http, "ws1");
    }

    private async Task<string[]> SetCookiesAsync(params string[] cookies)
    {
        var query = string.Join('&', cookies.Select(c => "set-cookie=" + Uri.EscapeDataString(c)));
        var r = await _alice.Http.GetAsync($"user/alice/ws1/api/anything?{query}").Expect(HttpStatusCode.OK);
        return r.Headers.TryGetValues("Set-Cookie", out var values) ? values.ToArray() : [];
    }

    [Fact]
    public async Task A_workspace_cannot_set_a_cookie_outside_its_own_path()
    {
        var set = await SetCookiesAsync("a=1; Path=/", "b=2", "c=3; Path=/user/alice/ws10/", "d=4; Path=/user/alice/ws1/../ws2/");
        Assert.Equal(4, set.Length);
        Assert.All(set, c => Assert.Contains("path=/user/alice/ws1/", c, StringComparison.OrdinalIgnoreCase));
        Assert.DoesNotContain(set, c => c.Contains("/ws10", StringComparison.Ordinal) || c.Contains("ws2", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_workspace_keeps_cookies_inside_its_path_but_loses_the_domain()
    {
        var set = await SetCookiesAsync("_xsrf=x; Path=/user/alice/ws1/lab; HttpOnly", "e=5; Domain=127.0.0.1; Path=/user/alice/ws1/");
        Assert.Contains(set, c => c.StartsWith("_xsrf=x", StringComparison.Ordinal) && c.Contains("path=/user/alice/ws1/lab", StringComparison.OrdinalIgnoreCase));
        Assert.DoesNotContain(set, c => c.Contains("domain", StringComparison.OrdinalIgnoreCase));
    }

    [Fact]
    public async Task A_workspace_cannot_set_the_hubs_cookies()
    {
        var set = await SetCookiesAsync($"{HubClaims.CookieName}=forged; Path=/", $"{HubClaims.CsrfCookie}=forged; Path=/user/alice/ws1/",
            "dsvm-anything=1", ".AspNetCore.Antiforgery.x=1", "__Host-x=1; Path=/; Secure", "ok=1");
        Assert.Equal("ok=1; path=/user/alice/ws1/", Assert.Single(set));
        Assert.NotEqual("forged", _alice.Cookie(HubClaims.CookieName));
        await _alice.Http.GetAsync("api/v1/me").Expect(HttpStatusCode.OK);
    }

    [Fact]
    public async Task Jupyters_pages_come_without_the_token()
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, "user/alice/ws1/lab");
        request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("text/html"));
        var r = await _alice.Http.SendAsync(request).Expect(HttpStatusCode.OK);
        var page = await r.Content.ReadAsStringAsync();
        Assert.Contains("<p>lab</p>", page, StringComparison.Ordinal);
        Assert.Contains("\"token\": \"\"", page, StringComparison.Ordinal);
        Assert.DoesNotContain(World.Backend.TokenFor("alice", "ws1"), page, StringComparison.Ordinal);
        Assert.Equal(page.Length, r.Content.Headers.ContentLength);
    }
}
