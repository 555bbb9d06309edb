using System.Net;
using System.Net.Http.Json;
using Dsvm.Core;
using Dsvm.Hub.Auth;

namespace Dsvm.Hub.Tests;

/// <summary>Logs in through a real (fake) OpenID Connect provider on loopback, with a browser-like client.</summary>
[System.Diagnostics.CodeAnalysis.SuppressMessage("Design", "CA1001", Justification = "xunit disposes it through IAsyncLifetime.DisposeAsync")]
public abstract class OidcTestBase : HubTestBase
{
    private FakeOidcProvider? _provider;

    internal FakeOidcProvider Provider => _provider ?? throw new InvalidOperationException("not initialised");

    internal virtual OidcOptions Oidc(OidcOptions defaults) => defaults;

    internal override HubOptions Options(HubOptions defaults) => defaults with
    {
        Oidc = Oidc(new OidcOptions
        {
            Authority = Provider.Issuer,
            ClientId = FakeOidcProvider.ClientId,
            ClientSecret = FakeOidcProvider.ClientSecret,
            RequireHttpsMetadata = false,
            ButtonLabel = "TestIdP",
        }),
    };

    public override async Task InitializeAsync()
    {
        _provider = await FakeOidcProvider.StartAsync();
        await base.InitializeAsync();
    }

    public override async Task DisposeAsync()
    {
        await base.DisposeAsync();
        if (_provider is not null)
        {
            await _provider.DisposeAsync();
        }
    }

    /// <summary>The whole code flow: hub → provider → hub callback. Returns the callback's answer and its URL.</summary>
    internal async Task<(HttpResponseMessage Answer, Uri Callback)> LoginThroughProviderAsync(HubClient c, string next = "/hub/")
    {
        var challenge = await c.Http.GetAsync($"hub/login/oidc?next={Uri.EscapeDataString(next)}").Expect(HttpStatusCode.Redirect);
        var authorize = challenge.Headers.Location!;
        Assert.StartsWith(Provider.Issuer + "/authorize?", authorize.ToString(), StringComparison.Ordinal);
        Assert.Contains("code_challenge=", authorize.Query, StringComparison.Ordinal);
        Assert.Contains("nonce=", authorize.Query, StringComparison.Ordinal);
        var back = await c.Http.GetAsync(authorize).Expect(HttpStatusCode.Redirect);
        var callback = back.Headers.Location!;
        Assert.StartsWith(Hub.Address + "hub/oidc/callback?", callback.ToString(), StringComparison.Ordinal);
        return (await c.Http.GetAsync(callback), callback);
    }

    /// <summary>Logs in and asserts it worked: redirected to next, with the session and CSRF cookies; the CSRF header is set.</summary>
    internal async Task<HubClient> LoggedInAsync(FakeIdentity identity, string next = "/hub/")
    {
        Provider.Next = identity;
        var c = Hub.NewClient();
        var (answer, _) = await LoginThroughProviderAsync(c, next);
        if (answer.StatusCode != HttpStatusCode.Redirect)
        {
            Assert.Fail($"expected a redirect after the callback, got {(int)answer.StatusCode}: {await answer.Content.ReadAsStringAsync()}");
        }

        Assert.Equal(next, answer.Headers.Location!.OriginalString);
        Assert.False(string.IsNullOrEmpty(c.Cookie(HubClaims.CookieName)));
        c.Http.DefaultRequestHeaders.Add(HubClaims.CsrfHeader, c.Cookie(HubClaims.CsrfCookie));
        return c;
    }

    internal static async Task AssertRefusedAsync(HubClient c, HttpResponseMessage answer, string expected)
    {
        Assert.Equal(HttpStatusCode.Forbidden, answer.StatusCode);
        Assert.Equal("text/html", answer.Content.Headers.ContentType?.MediaType);
        var page = await answer.Content.ReadAsStringAsync();
        Assert.Contains(WebUtility.HtmlEncode(expected), page, StringComparison.Ordinal);
        Assert.Null(c.Cookie(HubClaims.CookieName));
        await c.Http.GetAsync("api/v1/me").Expect(HttpStatusCode.Unauthorized);
    }

    internal async Task<List<string>> UserNamesAsync()
    {
        var admin = await AdminAsync();
        var users = await (await admin.Http.GetAsync("api/v1/users").Expect(HttpStatusCode.OK)).JsonAsync();
        return users.EnumerateArray().Select(u => u.Str("name")).ToList();
    }
}

public sealed class OidcLoginTests : OidcTestBase
{
    internal override OidcOptions Oidc(OidcOptions defaults) => defaults with
    {
        AdminClaim = "groups",
        AdminClaimValue = "hub-admins",
        DefaultQuota = new Quota { MaxWorkspaces = 2, MaxVcpus = null, MaxGpus = 0 },
    };

    [Fact]
    public async Task The_login_page_offers_the_provider_and_passwords_still_work()
    {
        var page = await (await Hub.Anonymous().GetAsync("hub/login?next=%2Fhub%2F").Expect(HttpStatusCode.OK)).Content.ReadAsStringAsync();
        Assert.Contains("Log in with TestIdP", page, StringComparison.Ordinal);
        Assert.Contains("/hub/login/oidc?next=%2Fhub%2F", page, StringComparison.Ordinal);
        await CreateUserAsync("carol");
        await Hub.NewClient().LoginAsync("carol", PasswordOf("carol")).Expect(HttpStatusCode.OK);
    }

    [Fact]
    public async Task A_first_login_creates_the_user_with_a_hub_session_and_a_second_maps_to_the_same_user()
    {
        var c = await LoggedInAsync(new FakeIdentity("sub-alice", "Alice.Smith@Example.org"), next: "/hub/");
        var me = await (await c.Http.GetAsync("api/v1/me").Expect(HttpStatusCode.OK)).JsonAsync();
        Assert.Equal("alice-smith-example-org", me.Str("name"));
        Assert.False(me.GetProperty("admin").GetBoolean());
        var quota = me.GetProperty("quota");
        Assert.Equal(2, quota.GetProperty("maxWorkspaces").GetInt32());
        Assert.Equal(System.Text.Json.JsonValueKind.Null, quota.GetProperty("maxVcpus").ValueKind);
        Assert.Equal(0, quota.GetProperty("maxGpus").GetInt32());

        // The session is the hub's own: the API (with CSRF), the web UI and the proxy take it as they take a password session.
        await c.Http.PostAsJsonAsync("api/v1/tokens", new { name = "t" }).Expect(HttpStatusCode.Created);
        using (var noCsrf = new HttpRequestMessage(HttpMethod.Post, "api/v1/tokens") { Content = JsonContent.Create(new { name = "t2" }) })
        {
            noCsrf.Headers.Add(HubClaims.CsrfHeader, "wrong");
            await c.Http.SendAsync(noCsrf).Expect(HttpStatusCode.Forbidden);
        }

        await c.Http.GetAsync("hub/").Expect(HttpStatusCode.OK);
        await StartRunningAsync(c.Http, "ws1");
        await c.Http.GetAsync("user/alice-smith-example-org/ws1/api/contents").Expect(HttpStatusCode.OK);

        // Same subject, new user name at the provider: still the same hub user; no second account.
        var again = await LoggedInAsync(new FakeIdentity("sub-alice", "alice.renamed"), next: "/hub/#workspaces");
        var me2 = await (await again.Http.GetAsync("api/v1/me").Expect(HttpStatusCode.OK)).JsonAsync();
        Assert.Equal("alice-smith-example-org", me2.Str("name"));
        Assert.Single(await UserNamesAsync(), n => n.StartsWith("alice", StringComparison.Ordinal));
        Assert.Equal(2, Provider.TokensIssued);
    }

    [Fact]
    public async Task The_admin_claim_makes_an_admin_and_its_absence_at_a_later_login_takes_it_away()
    {
        var boss = await LoggedInAsync(new FakeIdentity("sub-boss", "boss", ["staff", "hub-admins"]));
        Assert.True((await (await boss.Http.GetAsync("api/v1/me").Expect(HttpStatusCode.OK)).JsonAsync()).GetProperty("admin").GetBoolean());
        await boss.Http.GetAsync("api/v1/users").Expect(HttpStatusCode.OK);

        var plain = await LoggedInAsync(new FakeIdentity("sub-dave", "dave", ["staff"]));
        await plain.Http.GetAsync("api/v1/users").Expect(HttpStatusCode.Forbidden);

        // Removed from the group at the provider: the next login is not an admin, and the old admin session ends.
        var demoted = await LoggedInAsync(new FakeIdentity("sub-boss", "boss", ["staff"]));
        await demoted.Http.GetAsync("api/v1/users").Expect(HttpStatusCode.Forbidden);
        await boss.Http.GetAsync("api/v1/users").Expect(HttpStatusCode.Unauthorized);
    }

    [Theory]
    [InlineData(TokenTamper.WrongAudience)]
    [InlineData(TokenTamper.BadSignature)]
    [InlineData(TokenTamper.WrongNonce)]
    [InlineData(TokenTamper.WrongIssuer)]
    [InlineData(TokenTamper.Expired)]
    public async Task A_token_that_fails_validation_is_refused_and_creates_nobody(TokenTamper tamper)
    {
        Provider.Tamper = tamper;
        Provider.Next = new FakeIdentity("sub-mallory", "mallory");
        var c = Hub.NewClient();
        var (answer, _) = await LoginThroughProviderAsync(c);
        await AssertRefusedAsync(c, answer, "could not be verified");
        Assert.DoesNotContain("mallory", await UserNamesAsync());
    }

    [Fact]
    public async Task A_replayed_or_forged_callback_is_refused()
    {
        Provider.Next = new FakeIdentity("sub-erin", "erin");
        var c = Hub.NewClient();
        var (answer, callback) = await LoginThroughProviderAsync(c);
        Assert.Equal(HttpStatusCode.Redirect, answer.StatusCode);

        // The same callback again: its correlation cookie is spent (and the code too), in the same browser or another.
        await AssertRefusedAsync(Hub.NewClient(), await Hub.NewClient().Http.GetAsync(callback), "could not be verified");
        var replay = await c.Http.GetAsync(callback);
        Assert.Equal(HttpStatusCode.Forbidden, replay.StatusCode);

        // A state that is not the one the hub sent (a login CSRF attempt) is refused even with a fresh code.
        var victim = Hub.NewClient();
        var challenge = await victim.Http.GetAsync("hub/login/oidc").Expect(HttpStatusCode.Redirect);
        var back = await victim.Http.GetAsync(challenge.Headers.Location!).Expect(HttpStatusCode.Redirect);
        var forged = back.Headers.Location!.ToString();
        var state = System.Web.HttpUtility.ParseQueryString(back.Headers.Location!.Query)["state"]!;
        var tampered = forged.Replace(Uri.EscapeDataString(state), Uri.EscapeDataString(state[..^4] + "AAAA"), StringComparison.Ordinal);
        await AssertRefusedAsync(victim, await victim.Http.GetAsync(tampered), "could not be verified");
    }

    [Fact]
    public async Task A_provider_name_that_is_a_local_account_does_not_take_it_over()
    {
        // "admin" at the provider is not the hub's admin: the local account is not linked, so the login is refused.
        var c = Hub.NewClient();
        Provider.Next = new FakeIdentity("sub-x", "admin");
        var (answer, _) = await LoginThroughProviderAsync(c);
        await AssertRefusedAsync(c, answer, "the hub account 'admin' already exists and is not linked to this identity");

        Provider.Next = new FakeIdentity("sub-y", "!!!");
        var d = Hub.NewClient();
        (answer, _) = await LoginThroughProviderAsync(d);
        await AssertRefusedAsync(d, answer, "no usable 'preferred_username' claim");
    }
}

public sealed class OidcInviteOnlyTests : OidcTestBase
{
    internal override OidcOptions Oidc(OidcOptions defaults) => defaults with
    {
        AutoCreateUsers = false,
        LinkExistingUsers = true,
        PasswordLoginForAdminsOnly = true,
    };

    [Fact]
    public async Task Unknown_users_are_refused_and_accounts_made_by_an_admin_are_linked_once()
    {
        var c = Hub.NewClient();
        Provider.Next = new FakeIdentity("sub-bob", "bob");
        var (answer, _) = await LoginThroughProviderAsync(c);
        await AssertRefusedAsync(c, answer, "there is no hub account for 'bob'; ask an admin to create it");
        Assert.DoesNotContain("bob", await UserNamesAsync());

        await CreateUserAsync("bob");
        var bob = await LoggedInAsync(new FakeIdentity("sub-bob", "bob"));
        Assert.Equal("bob", (await (await bob.Http.GetAsync("api/v1/me").Expect(HttpStatusCode.OK)).JsonAsync()).Str("name"));

        // Another identity calling itself bob cannot use the now linked account.
        var other = Hub.NewClient();
        Provider.Next = new FakeIdentity("sub-impostor", "bob");
        (answer, _) = await LoginThroughProviderAsync(other);
        await AssertRefusedAsync(other, answer, "already exists and is not linked to this identity");
    }

    [Fact]
    public async Task Password_login_is_for_admins_only_when_configured()
    {
        await CreateUserAsync("frank");
        var p = await Hub.NewClient().LoginAsync("frank", PasswordOf("frank")).ExpectProblem(HttpStatusCode.Forbidden);
        Assert.Contains("log in with TestIdP", p.Str("detail"), StringComparison.Ordinal);
        await Hub.NewClient().LoginAsync(HubWorld.AdminName, HubWorld.AdminPassword).Expect(HttpStatusCode.OK);
    }
}

public sealed class OidcConfigurationTests
{
    [Theory]
    [InlineData("Alice", "alice")]
    [InlineData("alice.smith@example.org", "alice-smith-example-org")]
    [InlineData("José Núñez", "jose-nunez")]
    [InlineData("42nd", "u-42nd")]
    [InlineData("--x--", "x")]
    [InlineData("日本", null)]
    [InlineData("", null)]
    public void Provider_names_are_normalised_to_hub_user_names(string raw, string? expected)
    {
        var name = OidcLogin.NormalizeUserName(raw);
        Assert.Equal(expected, name);
        if (name is not null)
        {
            Dsvm.Core.Workspaces.WorkspaceNames.Validate(name, "user name");
        }
    }

    [Fact]
    public void A_long_name_is_cut_to_40_characters()
    {
        var name = OidcLogin.NormalizeUserName(new string('a', 39) + ".b");
        Assert.Equal(new string('a', 39), name);
    }

    [Theory]
    [InlineData("https://idp.example.org", false, "may be false only for a loopback authority")]
    [InlineData("http://idp.example.org", true, "must be https")]
    [InlineData("not a url", true, "is not an http(s) URL")]
    public async Task Unsafe_or_wrong_provider_settings_stop_the_hub_from_starting(string authority, bool requireHttps, string expected)
    {
        await using var world = new HubWorld();
        var options = HubWorld.DefaultOptions() with { Oidc = new OidcOptions { Authority = authority, ClientId = "c", RequireHttpsMetadata = requireHttps } };
        var ex = Assert.Throws<UsageException>(() => world.Build(options));
        Assert.Contains(expected, ex.Message, StringComparison.Ordinal);
    }
}
