using System.Net;
using System.Net.Http.Json;
using Dsvm.Hub.Auth;

namespace Dsvm.Hub.Tests;

public sealed class CsrfTests : HubTestBase
{
    private static object Ws(string name) => new { name, environment = "minimal", size = "small" };

    [Fact]
    public async Task A_cookie_session_without_the_csrf_header_is_403()
    {
        await CreateUserAsync("alice");
        var c = Hub.NewClient();
        await c.LoginAsync("alice", PasswordOf("alice"), sendCsrf: false).Expect(HttpStatusCode.OK);
        await c.Http.PostAsJsonAsync("api/v1/workspaces", Ws("ws1")).Expect(HttpStatusCode.Forbidden);
        await c.Http.PostAsJsonAsync("api/v1/tokens", new { name = "t" }).Expect(HttpStatusCode.Forbidden);
        Assert.Empty(World.Backend.Starts);
    }

    [Fact]
    public async Task A_cookie_session_with_a_wrong_csrf_header_is_403()
    {
        await CreateUserAsync("alice");
        var c = Hub.NewClient();
        await c.LoginAsync("alice", PasswordOf("alice"), sendCsrf: false).Expect(HttpStatusCode.OK);
        c.Http.DefaultRequestHeaders.Add(HubClaims.CsrfHeader, "0123456789abcdef0123456789abcdef");
        await c.Http.PostAsJsonAsync("api/v1/workspaces", Ws("ws1")).Expect(HttpStatusCode.Forbidden);
    }

    [Fact]
    public async Task A_cookie_session_with_the_csrf_header_may_post()
    {
        var c = await UserAsync("alice");
        Assert.Equal(c.Cookie(HubClaims.CsrfCookie), c.Http.DefaultRequestHeaders.GetValues(HubClaims.CsrfHeader).Single());
        await c.Http.PostAsJsonAsync("api/v1/workspaces", Ws("ws1")).Expect(HttpStatusCode.Accepted);
    }

    [Fact]
    public async Task Safe_methods_need_no_csrf_header()
    {
        await CreateUserAsync("alice");
        var c = Hub.NewClient();
        await c.LoginAsync("alice", PasswordOf("alice"), sendCsrf: false).Expect(HttpStatusCode.OK);
        await c.Http.GetAsync("api/v1/workspaces").Expect(HttpStatusCode.OK);
    }

    [Fact]
    public async Task Token_requests_need_no_csrf_header()
    {
        var alice = await UserTokenClientAsync("alice");
        Assert.False(alice.DefaultRequestHeaders.Contains(HubClaims.CsrfHeader));
        await alice.PostAsJsonAsync("api/v1/workspaces", Ws("ws1")).Expect(HttpStatusCode.Accepted);
    }

    [Fact]
    public async Task The_csrf_cookie_is_HttpOnly_and_the_web_ui_gets_the_secret_from_its_session()
    {
        await CreateUserAsync("alice");
        var c = Hub.NewClient();
        var r = await c.LoginAsync("alice", PasswordOf("alice"), sendCsrf: false).Expect(HttpStatusCode.OK);
        var csrf = Assert.Single(r.Headers.GetValues("Set-Cookie"), v => v.StartsWith(HubClaims.CsrfCookie + "=", StringComparison.Ordinal));
        Assert.Contains("httponly", csrf, StringComparison.OrdinalIgnoreCase);

        var page = await c.Http.GetAsync("hub/csrf").Expect(HttpStatusCode.OK);
        Assert.Contains("no-store", page.Headers.CacheControl?.ToString(), StringComparison.Ordinal);
        var secret = (await page.JsonAsync()).Str("csrf");
        Assert.Equal(64 / 2, secret.Length);
        c.Http.DefaultRequestHeaders.Add(HubClaims.CsrfHeader, secret);
        await c.Http.PostAsJsonAsync("api/v1/workspaces", Ws("ws1")).Expect(HttpStatusCode.Accepted);
    }

    [Fact]
    public async Task A_csrf_cookie_planted_by_someone_else_does_not_pass()
    {
        // A page on a sibling host (or a workspace sharing the origin) can write a dsvm-csrf cookie and send the same
        // value in the header; the secret is the session's, so that is not enough.
        await CreateUserAsync("alice");
        var c = Hub.NewClient();
        await c.LoginAsync("alice", PasswordOf("alice"), sendCsrf: false).Expect(HttpStatusCode.OK);
        c.Cookies.Add(Hub.Address, new System.Net.Cookie(HubClaims.CsrfCookie, "planted0planted0planted0planted0"));
        c.Http.DefaultRequestHeaders.Add(HubClaims.CsrfHeader, "planted0planted0planted0planted0");
        await c.Http.PostAsJsonAsync("api/v1/workspaces", Ws("ws1")).Expect(HttpStatusCode.Forbidden);
        await c.Http.PostAsJsonAsync("api/v1/tokens", new { name = "t" }).Expect(HttpStatusCode.Forbidden);
        Assert.Empty(World.Backend.Starts);
    }

    [Fact]
    public async Task The_secret_of_one_session_does_not_pass_for_another()
    {
        var first = await UserAsync("alice");
        var second = await UserAsync("alice", create: false);
        var firstSecret = first.Http.DefaultRequestHeaders.GetValues(HubClaims.CsrfHeader).Single();
        Assert.NotEqual(firstSecret, second.Http.DefaultRequestHeaders.GetValues(HubClaims.CsrfHeader).Single());
        second.Http.DefaultRequestHeaders.Remove(HubClaims.CsrfHeader);
        second.Http.DefaultRequestHeaders.Add(HubClaims.CsrfHeader, firstSecret);
        await second.Http.PostAsJsonAsync("api/v1/workspaces", Ws("ws1")).Expect(HttpStatusCode.Forbidden);
    }
}
