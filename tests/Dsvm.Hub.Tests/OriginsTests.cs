using System.Net;
using System.Net.Http.Headers;
using System.Net.Sockets;
using Dsvm.Core;
using Dsvm.Hub.Auth;
using Dsvm.Hub.Proxy;

namespace Dsvm.Hub.Tests;

/// <summary>
/// Per-workspace origins (Hub:WorkspaceDomain = *.localhost): the hub at 127.0.0.1, each workspace at
/// WORKSPACE-ID.localhost on the same port, entered through a one-time code from the hub.
/// </summary>
public sealed class OriginsTests : HubTestBase
{
    private HubClient _alice = null!;
    private string _ws1Url = "";

    internal override HubOptions Options(HubOptions defaults) => defaults with { WorkspaceDomain = "*.localhost" };

    public override async Task InitializeAsync()
    {
        await base.InitializeAsync();
        _alice = await UserAsync("alice");
        _ws1Url = (await StartRunningAsync(_alice.Http, "ws1")).Str("url");
    }

    /// <summary>A browser-like client for any *.localhost host of this hub (connects to the hub's loopback port).</summary>
    private HttpClient Browser(CookieContainer? cookies = null)
    {
        var port = Hub.Address.Port;
        var handler = new SocketsHttpHandler
        {
            UseProxy = false,
            AllowAutoRedirect = false,
            UseCookies = cookies is not null,
            CookieContainer = cookies ?? new CookieContainer(),
            ConnectCallback = async (_, ct) =>
            {
                var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
                await socket.ConnectAsync(new IPEndPoint(IPAddress.Loopback, port), ct);
                return new NetworkStream(socket, ownsSocket: true);
            },
        };
        return new HttpClient(handler) { Timeout = TimeSpan.FromSeconds(30) };
    }

    private static HttpRequestMessage Page(string url)
    {
        var r = new HttpRequestMessage(HttpMethod.Get, url);
        r.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("text/html"));
        return r;
    }

    /// <summary>The hub's redirect (with a one-time code) for a workspace path, from this session.</summary>
    private static async Task<Uri> CodeRedirectAsync(HubClient session, string path)
    {
        var r = await session.Http.SendAsync(Page(path)).Expect(HttpStatusCode.Redirect);
        return r.Headers.Location!;
    }

    [Fact]
    public async Task The_api_gives_the_workspace_url_on_its_own_host_named_by_its_id()
    {
        var url = new Uri(_ws1Url);
        Assert.Matches("^ws-[0-9a-f]{12}\\.localhost$", url.Host);
        Assert.Equal(Hub.Address.Port, url.Port);
        Assert.Equal("/user/alice/ws1/lab", url.AbsolutePath);
        var listed = await (await _alice.Http.GetAsync("api/v1/workspaces").Expect(HttpStatusCode.OK)).JsonAsync();
        Assert.Equal(_ws1Url, listed[0].Str("url"));
    }

    [Fact]
    public async Task The_owner_gets_in_through_a_one_time_code_that_becomes_a_host_only_cookie()
    {
        var redirect = await CodeRedirectAsync(_alice, "user/alice/ws1/lab?reset=1");
        Assert.Equal(new Uri(_ws1Url).Authority, redirect.Authority);
        Assert.Contains($"{WorkspaceOrigins.CodeParameter}=", redirect.Query, StringComparison.Ordinal);
        Assert.Contains("reset=1", redirect.Query, StringComparison.Ordinal);
        Assert.DoesNotContain(World.Backend.ServerFor("alice", "ws1")!.Requests, r => r.Contains("/lab", StringComparison.Ordinal));

        var jar = new CookieContainer();
        using var browser = Browser(jar);
        var exchanged = await browser.SendAsync(Page(redirect.ToString())).Expect(HttpStatusCode.Redirect);
        Assert.Equal("/user/alice/ws1/lab?reset=1", exchanged.Headers.Location!.OriginalString);
        var setCookie = Assert.Single(exchanged.Headers.GetValues("Set-Cookie"));
        Assert.StartsWith(WorkspaceOrigins.CookieName + "=", setCookie, StringComparison.Ordinal);
        Assert.Contains("httponly", setCookie, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain("domain", setCookie, StringComparison.OrdinalIgnoreCase);

        var echo = await (await browser.GetAsync(new Uri(redirect, "/user/alice/ws1/api/anything")).Expect(HttpStatusCode.OK)).JsonAsync();
        Assert.Equal($"token {World.Backend.TokenFor("alice", "ws1")}", echo.Str("authorization"));
        Assert.Equal(System.Text.Json.JsonValueKind.Null, echo.GetProperty("cookie").ValueKind);

        // The code works once.
        using var again = Browser(new CookieContainer());
        await again.SendAsync(Page(redirect.ToString())).Expect(HttpStatusCode.Forbidden);
    }

    [Fact]
    public async Task A_code_expires_after_a_minute()
    {
        var redirect = await CodeRedirectAsync(_alice, "user/alice/ws1/lab");
        World.Time.Advance(TimeSpan.FromMinutes(2));
        using var browser = Browser(new CookieContainer());
        await browser.SendAsync(Page(redirect.ToString())).Expect(HttpStatusCode.Forbidden);
    }

    [Fact]
    public async Task A_code_or_cookie_for_one_workspace_does_not_open_another()
    {
        var ws2Url = new Uri((await StartRunningAsync(_alice.Http, "ws2")).Str("url"));
        var redirect = await CodeRedirectAsync(_alice, "user/alice/ws1/lab");
        var code = redirect.Query.TrimStart('?');
        using var browser = Browser(new CookieContainer());
        await browser.SendAsync(Page($"http://{ws2Url.Authority}/user/alice/ws2/lab?{code}")).Expect(HttpStatusCode.Forbidden);

        // ws1's cookie, sent to ws2's host, is nothing there.
        var jar = new CookieContainer();
        using var ws1 = Browser(jar);
        await ws1.SendAsync(Page((await CodeRedirectAsync(_alice, "user/alice/ws1/lab")).ToString())).Expect(HttpStatusCode.Redirect);
        var cookie = jar.GetCookies(new Uri(_ws1Url))[WorkspaceOrigins.CookieName]!.Value;
        using var toWs2 = new HttpRequestMessage(HttpMethod.Get, $"http://{ws2Url.Authority}/user/alice/ws2/api/anything");
        toWs2.Headers.Add("Cookie", $"{WorkspaceOrigins.CookieName}={cookie}");
        await ws1.SendAsync(toWs2).Expect(HttpStatusCode.Unauthorized);

        // Nor does ws1's host serve ws2's path.
        using var other = new HttpRequestMessage(HttpMethod.Get, $"http://{new Uri(_ws1Url).Authority}/user/alice/ws2/api/anything");
        other.Headers.Add("Cookie", $"{WorkspaceOrigins.CookieName}={cookie}");
        await ws1.SendAsync(other).Expect(HttpStatusCode.NotFound);
    }

    [Fact]
    public async Task The_hub_session_cookie_is_not_accepted_on_a_workspace_host()
    {
        using var browser = Browser();
        using var api = new HttpRequestMessage(HttpMethod.Get, new Uri(new Uri(_ws1Url), "/user/alice/ws1/api/anything"));
        api.Headers.Add("Cookie", _alice.CookieHeader);
        await browser.SendAsync(api).Expect(HttpStatusCode.Unauthorized);

        // A browser is sent to the hub, which checks its own session there.
        using var page = Page(_ws1Url);
        page.Headers.Add("Cookie", _alice.CookieHeader);
        var r = await browser.SendAsync(page).Expect(HttpStatusCode.Redirect);
        Assert.Equal($"{Hub.Address.GetLeftPart(UriPartial.Authority)}/user/alice/ws1/lab", r.Headers.Location!.ToString());
        Assert.DoesNotContain(World.Backend.ServerFor("alice", "ws1")!.Requests, x => x.Contains("anything", StringComparison.Ordinal));
    }

    [Fact]
    public async Task The_hubs_api_and_pages_are_not_served_on_a_workspace_host()
    {
        using var browser = Browser();
        var host = new Uri(_ws1Url).Authority;
        foreach (var path in new[] { "/api/v1/me", "/hub/", "/hub/login", "/hub/csrf", "/" })
        {
            using var r = new HttpRequestMessage(HttpMethod.Get, $"http://{host}{path}");
            r.Headers.Add("Cookie", _alice.CookieHeader);
            await browser.SendAsync(r).Expect(HttpStatusCode.NotFound);
        }

        using var login = new HttpRequestMessage(HttpMethod.Post, $"http://{host}/api/v1/login")
        {
            Content = System.Net.Http.Json.JsonContent.Create(new { name = "alice", password = PasswordOf("alice") }),
        };
        await browser.SendAsync(login).Expect(HttpStatusCode.NotFound);
    }

    [Fact]
    public async Task Workspace_paths_are_not_proxied_on_the_hub_host()
    {
        await _alice.Http.GetAsync("user/alice/ws1/api/anything").Expect(HttpStatusCode.Redirect);
        await _alice.Http.PostAsync("user/alice/ws1/api/kernels", new StringContent("{}")).Expect(HttpStatusCode.NotFound);
        Assert.DoesNotContain(World.Backend.ServerFor("alice", "ws1")!.Requests, x => x.Contains("anything", StringComparison.Ordinal) || x.StartsWith("POST", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Another_user_gets_no_code_and_no_way_in()
    {
        var bob = await UserAsync("bob");
        await bob.Http.SendAsync(Page("user/alice/ws1/lab")).Expect(HttpStatusCode.Forbidden);

        // Bob's own workspace cookie names him: alice's host does not take it (and the path check refuses him).
        var bobWs = new Uri((await StartRunningAsync(bob.Http, "b1")).Str("url"));
        var jar = new CookieContainer();
        using var browser = Browser(jar);
        await browser.SendAsync(Page((await CodeRedirectAsync(bob, "user/bob/b1/lab")).ToString())).Expect(HttpStatusCode.Redirect);
        var cookie = jar.GetCookies(bobWs)[WorkspaceOrigins.CookieName]!.Value;
        using var r = new HttpRequestMessage(HttpMethod.Get, new Uri(new Uri(_ws1Url), "/user/alice/ws1/api/anything"));
        r.Headers.Add("Cookie", $"{WorkspaceOrigins.CookieName}={cookie}");
        await browser.SendAsync(r).Expect(HttpStatusCode.Unauthorized);
    }

    [Fact]
    public async Task A_hub_token_in_the_authorization_header_works_on_the_workspace_host()
    {
        var secret = (await CreateTokenAsync(_alice)).Str("token");
        using var browser = Browser();
        using var r = new HttpRequestMessage(HttpMethod.Get, new Uri(new Uri(_ws1Url), "/user/alice/ws1/api/anything"));
        r.Headers.TryAddWithoutValidation("Authorization", $"token {secret}");
        var echo = await (await browser.SendAsync(r).Expect(HttpStatusCode.OK)).JsonAsync();
        Assert.Equal($"token {World.Backend.TokenFor("alice", "ws1")}", echo.Str("authorization"));
    }

    [Fact]
    public async Task A_deleted_user_loses_the_workspace_host_too()
    {
        var jar = new CookieContainer();
        using var browser = Browser(jar);
        await browser.SendAsync(Page((await CodeRedirectAsync(_alice, "user/alice/ws1/lab")).ToString())).Expect(HttpStatusCode.Redirect);
        await browser.GetAsync(new Uri(new Uri(_ws1Url), "/user/alice/ws1/api/anything")).Expect(HttpStatusCode.OK);
        await (await AdminAsync()).Http.DeleteAsync("api/v1/users/alice").Expect(HttpStatusCode.NoContent);
        await CreateUserAsync("alice");
        await browser.GetAsync(new Uri(new Uri(_ws1Url), "/user/alice/ws1/api/anything")).Expect(HttpStatusCode.Unauthorized);
    }

    [Fact]
    public async Task Logging_out_of_the_hub_ends_the_workspace_host_session_too()
    {
        var jar = new CookieContainer();
        using var browser = Browser(jar);
        await browser.SendAsync(Page((await CodeRedirectAsync(_alice, "user/alice/ws1/lab")).ToString())).Expect(HttpStatusCode.Redirect);
        await browser.GetAsync(new Uri(new Uri(_ws1Url), "/user/alice/ws1/api/anything")).Expect(HttpStatusCode.OK);
        var unused = await CodeRedirectAsync(_alice, "user/alice/ws1/lab");
        await _alice.Http.PostAsync("api/v1/logout", null).Expect(HttpStatusCode.NoContent);

        await browser.GetAsync(new Uri(new Uri(_ws1Url), "/user/alice/ws1/api/anything")).Expect(HttpStatusCode.Unauthorized);
        using var other = Browser(new CookieContainer());
        await other.SendAsync(Page(unused.ToString())).Expect(HttpStatusCode.Forbidden);
    }

    [Theory]
    [InlineData("ws.example.org")]
    [InlineData("*")]
    [InlineData("*.-bad.org")]
    [InlineData("*.example.org\n")]
    public void A_bad_workspace_domain_is_refused_at_start_naming_the_key(string domain)
    {
        var e = Assert.Throws<UsageException>(() => World.Build(HubWorld.DefaultOptions() with { WorkspaceDomain = domain }));
        Assert.Contains("Hub:WorkspaceDomain", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void The_hub_host_inside_the_workspace_domain_is_refused()
    {
        var e = Assert.Throws<UsageException>(() => World.Build(HubWorld.DefaultOptions() with { WorkspaceDomain = "*.example.org", PublicHost = "hub.example.org" }));
        Assert.Contains("Hub:PublicHost", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void The_csrf_secret_cookie_name_is_a_hub_cookie_name()
    {
        Assert.StartsWith("dsvm-", HubClaims.CsrfCookie, StringComparison.Ordinal);
        Assert.StartsWith("dsvm-", WorkspaceOrigins.CookieName, StringComparison.Ordinal);
    }
}
