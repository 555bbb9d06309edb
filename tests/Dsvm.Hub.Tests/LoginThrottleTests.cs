using System.Net;
using System.Net.Http.Json;
using Dsvm.Core;
using Dsvm.Hub.Auth;

namespace Dsvm.Hub.Tests;

/// <summary>Throttling per (user, address) and per address, with the client address taken from a trusted proxy.</summary>
public sealed class LoginThrottleTests : HubTestBase
{
    internal override HubOptions Options(HubOptions defaults) => defaults with
    {
        MaxFailedLogins = 3,
        MaxFailedLoginsPerAddress = 6,
        TrustedProxies = ["127.0.0.1"],
    };

    private static Task<HttpResponseMessage> LoginFrom(HubClient c, string address, string name, string password)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, "api/v1/login") { Content = JsonContent.Create(new { name, password }) };
        request.Headers.Add("X-Forwarded-For", address);
        return c.Http.SendAsync(request);
    }

    [Fact]
    public async Task Failures_from_one_address_do_not_lock_the_user_out_elsewhere()
    {
        await CreateUserAsync("alice");
        var attacker = Hub.NewClient();
        for (var i = 0; i < 3; i++)
        {
            await LoginFrom(attacker, "203.0.113.7", "alice", "wrong-password").Expect(HttpStatusCode.Unauthorized);
        }

        // The attacker's address is blocked for alice, even with the right password...
        var blocked = await LoginFrom(attacker, "203.0.113.7", "alice", PasswordOf("alice"));
        Assert.Equal(HttpStatusCode.TooManyRequests, blocked.StatusCode);
        Assert.True(blocked.Headers.RetryAfter?.Delta > TimeSpan.Zero);
        Assert.Contains("from this address", (await blocked.JsonAsync()).Str("detail"), StringComparison.Ordinal);

        // ...while alice, from her own address, logs in.
        var alice = Hub.NewClient();
        await LoginFrom(alice, "198.51.100.20", "alice", PasswordOf("alice")).Expect(HttpStatusCode.OK);
        Assert.False(string.IsNullOrEmpty(alice.Cookie(HubClaims.CookieName)));

        // Once the window slides by, the address may try again.
        World.Time.Advance(TimeSpan.FromMinutes(6));
        await LoginFrom(attacker, "203.0.113.7", "alice", PasswordOf("alice")).Expect(HttpStatusCode.OK);
    }

    [Fact]
    public async Task One_address_spraying_many_names_hits_the_looser_per_address_limit()
    {
        await CreateUserAsync("bob");
        var sprayer = Hub.NewClient();
        for (var i = 0; i < 6; i++)
        {
            await LoginFrom(sprayer, "2001:db8:1:2::10", $"user{i}", "wrong-password").Expect(HttpStatusCode.Unauthorized);
        }

        // Another name, another host in the same /64: still that address.
        var r = await LoginFrom(sprayer, "2001:db8:1:2::99", "bob", PasswordOf("bob"));
        Assert.Equal(HttpStatusCode.TooManyRequests, r.StatusCode);
        Assert.NotNull(r.Headers.RetryAfter);
        await LoginFrom(Hub.NewClient(), "2001:db8:1:3::10", "bob", PasswordOf("bob")).Expect(HttpStatusCode.OK);
    }

    [Fact]
    public async Task The_login_form_is_throttled_the_same_way()
    {
        await CreateUserAsync("carol");
        var c = Hub.NewClient();
        for (var i = 0; i < 3; i++)
        {
            await LoginFrom(c, "192.0.2.1", "carol", "wrong-password").Expect(HttpStatusCode.Unauthorized);
        }

        var form = await c.Http.GetStringAsync("hub/login");
        var token = System.Text.RegularExpressions.Regex.Match(form, "name=\"__RequestVerificationToken\" value=\"([^\"]+)\"").Groups[1].Value;
        using var post = new HttpRequestMessage(HttpMethod.Post, "hub/login")
        {
            Content = new FormUrlEncodedContent(new Dictionary<string, string> { ["__RequestVerificationToken"] = token, ["name"] = "carol", ["password"] = PasswordOf("carol"), ["next"] = "/hub/" }),
        };
        post.Headers.Add("X-Forwarded-For", "192.0.2.1");
        Assert.Equal(HttpStatusCode.TooManyRequests, (await c.Http.SendAsync(post)).StatusCode);
    }
}

/// <summary>Without a trusted proxy, X-Forwarded-For is not believed: a client cannot pick a fresh address per guess.</summary>
public sealed class UntrustedForwardedForTests : HubTestBase
{
    internal override HubOptions Options(HubOptions defaults) => defaults with { MaxFailedLogins = 3 };

    [Fact]
    public async Task Forged_forwarded_addresses_all_count_as_the_real_one()
    {
        var c = Hub.NewClient();
        for (var i = 0; i < 3; i++)
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, "api/v1/login") { Content = JsonContent.Create(new { name = HubWorld.AdminName, password = "wrong-password" }) };
            request.Headers.Add("X-Forwarded-For", $"203.0.113.{i + 1}");
            await c.Http.SendAsync(request).Expect(HttpStatusCode.Unauthorized);
        }

        var r = await c.LoginAsync(HubWorld.AdminName, HubWorld.AdminPassword);
        Assert.Equal(HttpStatusCode.TooManyRequests, r.StatusCode);
    }
}

public sealed class LoginThrottleUnitTests
{
    [Theory]
    [InlineData("192.0.2.5", "192.0.2.5")]
    [InlineData("::ffff:192.0.2.5", "192.0.2.5")]
    [InlineData("2001:db8:aa:bb:1:2:3:4", "2001:db8:aa:bb::/64")]
    public void Addresses_are_counted_per_host_and_IPv6_per_64(string address, string key) =>
        Assert.Equal(key, LoginThrottle.AddressKey(IPAddress.Parse(address)));

    [Fact]
    public void A_success_clears_only_that_address_and_the_window_slides()
    {
        var time = new ManualTime();
        var throttle = new LoginThrottle(new HubOptions { MaxFailedLogins = 2, MaxFailedLoginsPerAddress = 100 }, time);
        var a = IPAddress.Parse("192.0.2.1");
        var b = IPAddress.Parse("192.0.2.2");
        throttle.Failed("alice", a);
        throttle.Failed("alice", a);
        throttle.Failed("alice", b);
        Assert.Throws<TooManyRequestsException>(() => throttle.ThrowIfBlocked("alice", a));
        throttle.ThrowIfBlocked("alice", b);
        throttle.Succeeded("alice", b);
        Assert.Throws<TooManyRequestsException>(() => throttle.ThrowIfBlocked("alice", a));
        time.Advance(TimeSpan.FromMinutes(5.1));
        throttle.ThrowIfBlocked("alice", a);
    }
}
