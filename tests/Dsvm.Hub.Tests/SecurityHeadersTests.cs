using System.Net;
using System.Net.Http.Json;

namespace Dsvm.Hub.Tests;

/// <summary>Security headers on the hub's own pages and API; no-store on answers that carry a secret (issue 9, finding 6).</summary>
public sealed class SecurityHeadersTests : HubTestBase
{
    private static string Header(HttpResponseMessage r, string name) =>
        r.Headers.TryGetValues(name, out var v) ? string.Join(", ", v)
        : r.Content.Headers.TryGetValues(name, out var c) ? string.Join(", ", c) : "";

    private static void AssertHardened(HttpResponseMessage r, string what)
    {
        Assert.True(Header(r, "X-Content-Type-Options") == "nosniff", $"{what}: X-Content-Type-Options is '{Header(r, "X-Content-Type-Options")}'");
        Assert.True(Header(r, "X-Frame-Options") == "DENY", $"{what}: X-Frame-Options is '{Header(r, "X-Frame-Options")}'");
        Assert.True(Header(r, "Referrer-Policy").Length > 0, $"{what}: no Referrer-Policy");
        var csp = Header(r, "Content-Security-Policy");
        Assert.True(csp.Contains("frame-ancestors 'none'", StringComparison.Ordinal), $"{what}: CSP is '{csp}'");
    }

    [Fact]
    public async Task Hub_pages_static_files_and_api_answers_carry_the_security_headers()
    {
        var admin = await AdminAsync();
        var anonymous = Hub.Anonymous();
        AssertHardened(await anonymous.GetAsync("hub/login").Expect(HttpStatusCode.OK), "login page");
        AssertHardened(await anonymous.GetAsync("hub/").Expect(HttpStatusCode.Redirect), "redirect");
        AssertHardened(await anonymous.GetAsync("api/v1/me").Expect(HttpStatusCode.Unauthorized), "401");
        AssertHardened(await anonymous.GetAsync("healthz").Expect(HttpStatusCode.OK), "healthz");
        AssertHardened(await anonymous.GetAsync("hub/static/hub.js").Expect(HttpStatusCode.OK), "hub.js");
        AssertHardened(await admin.Http.GetAsync("api/v1/me").Expect(HttpStatusCode.OK), "api");
        AssertHardened(await admin.Http.GetAsync("api/v1/nothing-here"), "404");
        var page = await admin.Http.GetAsync("hub/").Expect(HttpStatusCode.OK);
        AssertHardened(page, "hub page");

        // The web UI's policy: its own scripts, styles and API only (wwwroot has no inline script or style).
        var csp = Header(page, "Content-Security-Policy");
        Assert.Contains("default-src 'self'", csp, StringComparison.Ordinal);
        Assert.Contains("script-src 'self'", csp, StringComparison.Ordinal);
        Assert.DoesNotContain("unsafe-inline", csp, StringComparison.Ordinal);
        Assert.Contains("object-src 'none'", csp, StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_web_ui_has_no_inline_script_or_style_the_policy_would_block()
    {
        var admin = await AdminAsync();
        var html = await (await admin.Http.GetAsync("hub/").Expect(HttpStatusCode.OK)).Content.ReadAsStringAsync();
        var login = await Hub.Anonymous().GetStringAsync("hub/login");
        foreach (var page in new[] { html, login })
        {
            Assert.DoesNotMatch("<script(?![^>]*\\bsrc=)", page);
            Assert.DoesNotContain("<style", page, StringComparison.OrdinalIgnoreCase);
            Assert.DoesNotContain(" style=", page, StringComparison.OrdinalIgnoreCase);
            Assert.DoesNotMatch("\\son[a-z]+=", page);
        }
    }

    [Fact]
    public async Task Answers_that_carry_a_secret_are_not_stored()
    {
        var admin = await AdminAsync();
        var login = await Hub.NewClient().LoginAsync(HubWorld.AdminName, HubWorld.AdminPassword).Expect(HttpStatusCode.OK);
        Assert.Contains("no-store", Header(login, "Cache-Control"), StringComparison.Ordinal);
        var token = await admin.Http.PostAsJsonAsync("api/v1/tokens", new { name = "t", password = HubWorld.AdminPassword }).Expect(HttpStatusCode.Created);
        Assert.Contains("no-store", Header(token, "Cache-Control"), StringComparison.Ordinal);
        var created = await admin.Http.PostAsJsonAsync("api/v1/classes", new { name = "cls", environment = "minimal", size = "small", count = 1, prestart = false }).Expect(HttpStatusCode.Created);
        Assert.Contains("no-store", Header(created, "Cache-Control"), StringComparison.Ordinal);
        var csv = await admin.Http.GetAsync($"api/v1/classes/cls/credentials.csv?csrf={admin.Cookie(Dsvm.Hub.Auth.HubClaims.CsrfCookie)}").Expect(HttpStatusCode.OK);
        Assert.Contains("no-store", Header(csv, "Cache-Control"), StringComparison.Ordinal);
        Assert.Contains("no-store", Header(await Hub.Anonymous().GetAsync("hub/login"), "Cache-Control"), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Proxied_workspace_answers_keep_jupyters_own_headers_and_still_work()
    {
        var alice = await UserAsync("alice");
        await StartRunningAsync(alice.Http, "ws1");
        var r = await alice.Http.GetAsync("user/alice/ws1/api/contents").Expect(HttpStatusCode.OK);
        Assert.Equal("", Header(r, "Content-Security-Policy"));
        Assert.Equal("", Header(r, "X-Frame-Options"));
        Assert.Equal("GET", (await r.JsonAsync()).Str("method"));
    }
}
