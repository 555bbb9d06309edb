using System.Net;
using Dsvm.Hub.Auth;

namespace Dsvm.Hub.Tests;

public sealed class LoginApiTests : HubTestBase
{
    internal override HubOptions Options(HubOptions defaults) => defaults with { MaxFailedLogins = 3 };

    [Fact]
    public async Task Wrong_password_is_401_problem_details()
    {
        var problem = await Hub.NewClient().LoginAsync(HubWorld.AdminName, "wrong-password").ExpectProblem(HttpStatusCode.Unauthorized);
        Assert.Contains("password", problem.Str("detail"), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Unknown_user_is_401_like_a_wrong_password()
    {
        await Hub.NewClient().LoginAsync("nobody", "whatever-password").ExpectProblem(HttpStatusCode.Unauthorized);
    }

    [Fact]
    public async Task Too_many_failures_are_429_with_Retry_After_even_for_the_right_password()
    {
        var c = Hub.NewClient();
        for (var i = 0; i < 3; i++)
        {
            await c.LoginAsync(HubWorld.AdminName, "wrong-password").Expect(HttpStatusCode.Unauthorized);
        }

        var r = await c.LoginAsync(HubWorld.AdminName, HubWorld.AdminPassword);
        Assert.Equal(HttpStatusCode.TooManyRequests, r.StatusCode);
        Assert.NotNull(r.Headers.RetryAfter);
        Assert.True(r.Headers.RetryAfter!.Delta > TimeSpan.Zero);
        Assert.Null(c.Cookie(HubClaims.CookieName));

        // Once the window has slid by, the right password works again.
        World.Time.Advance(TimeSpan.FromMinutes(6));
        await c.LoginAsync(HubWorld.AdminName, HubWorld.AdminPassword).Expect(HttpStatusCode.OK);
    }

    [Fact]
    public async Task Login_sets_the_session_cookie_and_the_csrf_cookie()
    {
        var c = Hub.NewClient();
        var r = await c.LoginAsync(HubWorld.AdminName, HubWorld.AdminPassword).Expect(HttpStatusCode.OK);
        var setCookies = r.Headers.GetValues("Set-Cookie").ToList();
        var session = Assert.Single(setCookies, s => s.StartsWith(HubClaims.CookieName + "=", StringComparison.Ordinal));
        Assert.Contains("httponly", session, StringComparison.OrdinalIgnoreCase);
        var csrf = Assert.Single(setCookies, s => s.StartsWith(HubClaims.CsrfCookie + "=", StringComparison.Ordinal));
        Assert.Contains("httponly", csrf, StringComparison.OrdinalIgnoreCase);
        Assert.Contains("samesite=strict", csrf, StringComparison.OrdinalIgnoreCase);
        Assert.False(string.IsNullOrEmpty(c.Cookie(HubClaims.CookieName)));
        Assert.False(string.IsNullOrEmpty(c.Cookie(HubClaims.CsrfCookie)));
        await c.Http.GetAsync("api/v1/me").Expect(HttpStatusCode.OK);
    }
}
