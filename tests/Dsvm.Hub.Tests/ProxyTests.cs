using System.Net;
using System.Net.Http.Headers;
using System.Net.WebSockets;
using System.Text;
using Dsvm.Hub.Auth;

namespace Dsvm.Hub.Tests;

public sealed class ProxyTests : HubTestBase
{
    private HubClient _alice = null!;

    public override async Task InitializeAsync()
    {
        await base.InitializeAsync();
        _alice = await UserAsync("alice");
        await StartRunningAsync(_alice.Http, "ws1");
    }

    private string WorkspaceToken => World.Backend.TokenFor("alice", "ws1");

    [Fact]
    public async Task The_owner_reaches_Jupyter_with_the_workspace_token_and_without_the_hubs_cookies()
    {
        _alice.Cookies.Add(Hub.Address, new Cookie("_xsrf", "jupyter-xsrf-value"));
        using var request = new HttpRequestMessage(HttpMethod.Get, "user/alice/ws1/api/anything?x=1");
        request.Headers.Add(HubClaims.CsrfHeader, "should-not-pass");
        var r = await _alice.Http.SendAsync(request).Expect(HttpStatusCode.OK);
        var echo = await r.JsonAsync();
        Assert.Equal("GET", echo.Str("method"));
        Assert.Equal("/user/alice/ws1/api/anything", echo.Str("path"));
        Assert.Equal("?x=1", echo.Str("query"));
        Assert.Equal($"token {WorkspaceToken}", echo.Str("authorization"));
        var cookie = echo.Str("cookie");
        Assert.Contains("_xsrf=jupyter-xsrf-value", cookie, StringComparison.Ordinal);
        Assert.DoesNotContain(HubClaims.CookieName, cookie, StringComparison.Ordinal);
        Assert.DoesNotContain(HubClaims.CsrfCookie, cookie, StringComparison.Ordinal);
        Assert.DoesNotContain(_alice.Cookie(HubClaims.CookieName)!, cookie, StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_hubs_antiforgery_cookie_does_not_reach_Jupyter()
    {
        await _alice.Http.GetAsync("hub/login").Expect(HttpStatusCode.OK);
        Assert.False(string.IsNullOrEmpty(_alice.Cookie("dsvm-antiforgery")));
        var echo = await (await _alice.Http.GetAsync("user/alice/ws1/api/anything").Expect(HttpStatusCode.OK)).JsonAsync();
        Assert.Equal(System.Text.Json.JsonValueKind.Null, echo.GetProperty("cookie").ValueKind);
    }

    [Fact]
    public async Task Stopping_the_hub_closes_proxied_websockets_promptly()
    {
        using var ws = new ClientWebSocket();
        ws.Options.Cookies = _alice.Cookies;
        await ws.ConnectAsync(WsUri("user/alice/ws1/api/kernels/k1/channels"), CancellationToken.None);
        Assert.Equal("hi", await EchoAsync(ws, "hi"));
        var watch = System.Diagnostics.Stopwatch.StartNew();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await Hub.App.StopAsync(cts.Token);
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(5), $"stopping took {watch.Elapsed.TotalSeconds:0.0} s with a websocket open");
    }

    [Fact]
    public async Task Only_hub_cookies_are_dropped_and_no_cookie_header_is_sent_when_none_is_left()
    {
        var r = await _alice.Http.GetAsync("user/alice/ws1/api/contents").Expect(HttpStatusCode.OK);
        var echo = await r.JsonAsync();
        Assert.Equal(System.Text.Json.JsonValueKind.Null, echo.GetProperty("cookie").ValueKind);
    }

    [Fact]
    public async Task A_hub_token_is_replaced_by_the_workspace_token()
    {
        var secret = (await CreateTokenAsync(_alice)).Str("token");
        var r = await Hub.TokenClient(secret).GetAsync("user/alice/ws1/api/kernels").Expect(HttpStatusCode.OK);
        var echo = await r.JsonAsync();
        Assert.Equal($"token {WorkspaceToken}", echo.Str("authorization"));
        Assert.DoesNotContain(secret, echo.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Unsafe_methods_are_forwarded_too()
    {
        var r = await _alice.Http.PutAsync("user/alice/ws1/api/contents/a.ipynb", new StringContent("{}", Encoding.UTF8, "application/json")).Expect(HttpStatusCode.OK);
        Assert.Equal("PUT", (await r.JsonAsync()).Str("method"));
    }

    [Fact]
    public async Task A_read_only_token_cannot_use_the_workspace()
    {
        var secret = (await CreateTokenAsync(_alice, ["read"])).Str("token");
        await Hub.TokenClient(secret).GetAsync("user/alice/ws1/api/anything").Expect(HttpStatusCode.Forbidden);
    }

    [Fact]
    public async Task A_cross_origin_browser_request_with_the_session_cookie_is_403()
    {
        using var evil = new HttpRequestMessage(HttpMethod.Post, "user/alice/ws1/api/kernels") { Content = new StringContent("{}") };
        evil.Headers.Add("Origin", "http://evil.example");
        await _alice.Http.SendAsync(evil).Expect(HttpStatusCode.Forbidden);
        using var sibling = new HttpRequestMessage(HttpMethod.Post, "user/alice/ws1/api/kernels") { Content = new StringContent("{}") };
        sibling.Headers.Add("Origin", $"http://{Hub.Address.Host}:1");
        await _alice.Http.SendAsync(sibling).Expect(HttpStatusCode.Forbidden);
        using var opaque = new HttpRequestMessage(HttpMethod.Post, "user/alice/ws1/api/kernels") { Content = new StringContent("{}") };
        opaque.Headers.Add("Origin", "null");
        await _alice.Http.SendAsync(opaque).Expect(HttpStatusCode.Forbidden);
        Assert.DoesNotContain(World.Backend.ServerFor("alice", "ws1")!.Requests, r => r.StartsWith("POST", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_same_origin_browser_request_with_the_session_cookie_is_forwarded()
    {
        using var own = new HttpRequestMessage(HttpMethod.Post, "user/alice/ws1/api/kernels") { Content = new StringContent("{}") };
        own.Headers.Add("Origin", Hub.Address.GetLeftPart(UriPartial.Authority));
        Assert.Equal("POST", (await (await _alice.Http.SendAsync(own).Expect(HttpStatusCode.OK)).JsonAsync()).Str("method"));

        // A cross-origin page may still link to the workspace (a plain GET navigation).
        using var link = new HttpRequestMessage(HttpMethod.Get, "user/alice/ws1/lab");
        link.Headers.Add("Origin", "http://evil.example");
        await _alice.Http.SendAsync(link).Expect(HttpStatusCode.OK);
    }

    [Fact]
    public async Task A_token_request_is_not_subject_to_the_origin_check()
    {
        var secret = (await CreateTokenAsync(_alice)).Str("token");
        using var request = new HttpRequestMessage(HttpMethod.Post, "user/alice/ws1/api/kernels") { Content = new StringContent("{}") };
        request.Headers.Add("Origin", "http://elsewhere.example");
        await Hub.TokenClient(secret).SendAsync(request).Expect(HttpStatusCode.OK);
    }

    [Fact]
    public async Task A_cross_origin_websocket_with_the_session_cookie_is_refused()
    {
        using var ws = new ClientWebSocket();
        ws.Options.Cookies = _alice.Cookies;
        ws.Options.SetRequestHeader("Origin", "http://evil.example");
        ws.Options.CollectHttpResponseDetails = true;
        await Assert.ThrowsAsync<WebSocketException>(() => ws.ConnectAsync(WsUri("user/alice/ws1/api/kernels/k1/channels"), CancellationToken.None));
        Assert.Equal(HttpStatusCode.Forbidden, ws.HttpStatusCode);

        using var own = new ClientWebSocket();
        own.Options.Cookies = _alice.Cookies;
        own.Options.SetRequestHeader("Origin", Hub.Address.GetLeftPart(UriPartial.Authority));
        await own.ConnectAsync(WsUri("user/alice/ws1/api/kernels/k1/channels"), CancellationToken.None);
        Assert.Equal("same origin", await EchoAsync(own, "same origin"));
    }

    [Fact]
    public async Task A_deleted_users_session_no_longer_opens_the_workspace()
    {
        await _alice.Http.GetAsync("user/alice/ws1/api/anything").Expect(HttpStatusCode.OK);
        var admin = await AdminAsync();
        await admin.Http.DeleteAsync("api/v1/users/alice").Expect(HttpStatusCode.NoContent);
        await _alice.Http.GetAsync("user/alice/ws1/api/anything").Expect(HttpStatusCode.Unauthorized);
        await _alice.Http.GetAsync("api/v1/me").Expect(HttpStatusCode.Unauthorized);

        // Not even once a new "alice" exists.
        await CreateUserAsync("alice");
        await _alice.Http.GetAsync("user/alice/ws1/api/anything").Expect(HttpStatusCode.Unauthorized);
    }

    [Fact]
    public async Task Another_user_gets_403()
    {
        var bob = await UserAsync("bob");
        await bob.Http.GetAsync("user/alice/ws1/api/anything").Expect(HttpStatusCode.Forbidden);
        var bobToken = Hub.TokenClient((await CreateTokenAsync(bob)).Str("token"));
        await bobToken.GetAsync("user/alice/ws1/lab").Expect(HttpStatusCode.Forbidden);
        Assert.DoesNotContain(World.Backend.ServerFor("alice", "ws1")!.Requests, x => x.Contains("anything", StringComparison.Ordinal) || x.EndsWith("/lab", StringComparison.Ordinal));
    }

    [Fact]
    public async Task An_admin_may_open_any_workspace_when_AdminAccess_is_on()
    {
        var open = await World.StartHubAsync(HubWorld.DefaultOptions() with { AdminAccess = true });
        var admin = open.NewClient();
        await admin.LoginAsync(HubWorld.AdminName, HubWorld.AdminPassword).Expect(HttpStatusCode.OK);
        var echo = await (await admin.Http.GetAsync("user/alice/ws1/api/anything").Expect(HttpStatusCode.OK)).JsonAsync();
        Assert.Equal($"token {WorkspaceToken}", echo.Str("authorization"));
    }

    [Fact]
    public async Task An_admin_is_refused_when_AdminAccess_is_off_which_is_the_default()
    {
        Assert.False(new HubOptions().AdminAccess);
        var strict = await World.StartHubAsync(HubWorld.DefaultOptions());
        var admin = strict.NewClient();
        await admin.LoginAsync(HubWorld.AdminName, HubWorld.AdminPassword).Expect(HttpStatusCode.OK);
        await admin.Http.GetAsync("user/alice/ws1/api/anything").Expect(HttpStatusCode.Forbidden);

        // The owner still gets in through that hub.
        var alice = strict.NewClient();
        await alice.LoginAsync("alice", PasswordOf("alice")).Expect(HttpStatusCode.OK);
        await alice.Http.GetAsync("user/alice/ws1/api/anything").Expect(HttpStatusCode.OK);
    }

    [Fact]
    public async Task An_anonymous_API_client_gets_401()
    {
        await Hub.Anonymous().GetAsync("user/alice/ws1/api/anything").Expect(HttpStatusCode.Unauthorized);
        await Hub.TokenClient("dsvm_forged").GetAsync("user/alice/ws1/api/anything").Expect(HttpStatusCode.Unauthorized);
    }

    [Fact]
    public async Task An_anonymous_browser_is_redirected_to_the_login_page_with_next()
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, "user/alice/ws1/lab?reset=1");
        request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("text/html"));
        var r = await Hub.Anonymous().SendAsync(request).Expect(HttpStatusCode.Redirect);
        Assert.Equal("/hub/login?next=" + Uri.EscapeDataString("/user/alice/ws1/lab?reset=1"), r.Headers.Location?.OriginalString);
    }

    [Fact]
    public async Task A_stopped_workspace_is_503()
    {
        await _alice.Http.PostAsync("api/v1/workspaces/alice/ws1/stop", null).Expect(HttpStatusCode.OK);
        await _alice.Http.GetAsync("user/alice/ws1/api/anything").Expect(HttpStatusCode.ServiceUnavailable);
    }

    [Fact]
    public async Task A_workspace_that_does_not_exist_is_503()
    {
        await _alice.Http.GetAsync("user/alice/nothing/lab").Expect(HttpStatusCode.ServiceUnavailable);
    }

    [Fact]
    public async Task A_websocket_echoes_through_the_proxy_with_the_session_cookie()
    {
        using var ws = new ClientWebSocket();
        ws.Options.Cookies = _alice.Cookies;
        await ws.ConnectAsync(WsUri("user/alice/ws1/api/kernels/k1/channels"), CancellationToken.None);
        Assert.Equal("hello kernel", await EchoAsync(ws, "hello kernel"));
        Assert.Equal("second", await EchoAsync(ws, "second"));
        await ws.CloseAsync(WebSocketCloseStatus.NormalClosure, "done", CancellationToken.None);
    }

    [Fact]
    public async Task A_websocket_echoes_through_the_proxy_with_a_hub_token()
    {
        var secret = (await CreateTokenAsync(_alice)).Str("token");
        using var ws = new ClientWebSocket();
        ws.Options.SetRequestHeader("Authorization", $"token {secret}");
        await ws.ConnectAsync(WsUri("user/alice/ws1/api/kernels/k2/channels"), CancellationToken.None);
        Assert.Equal("ping", await EchoAsync(ws, "ping"));
        await ws.CloseAsync(WebSocketCloseStatus.NormalClosure, "done", CancellationToken.None);
    }

    [Fact]
    public async Task A_websocket_from_another_user_is_refused()
    {
        var bob = await UserAsync("bob");
        using var ws = new ClientWebSocket();
        ws.Options.Cookies = bob.Cookies;
        ws.Options.CollectHttpResponseDetails = true;
        await Assert.ThrowsAsync<WebSocketException>(() => ws.ConnectAsync(WsUri("user/alice/ws1/api/kernels/k1/channels"), CancellationToken.None));
        Assert.Equal(HttpStatusCode.Forbidden, ws.HttpStatusCode);
    }

    private Uri WsUri(string path) => new($"ws://{Hub.Address.Authority}/{path}");

    private static async Task<string> EchoAsync(ClientWebSocket ws, string text)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        await ws.SendAsync(Encoding.UTF8.GetBytes(text), WebSocketMessageType.Text, true, timeout.Token);
        var buffer = new byte[4096];
        var sb = new StringBuilder();
        WebSocketReceiveResult result;
        do
        {
            result = await ws.ReceiveAsync(buffer, timeout.Token);
            sb.Append(Encoding.UTF8.GetString(buffer, 0, result.Count));
        }
        while (!result.EndOfMessage);
        Assert.Equal(WebSocketMessageType.Text, result.MessageType);
        return sb.ToString();
    }
}
