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
}
