using System.Net;
using System.Net.Http.Json;
using Dsvm.Hub.Auth;

namespace Dsvm.Hub.Tests;

/// <summary>
/// A session cookie is only as good as its server-side record: logout, a password change and deleting the user end
/// it, whoever kept a copy of the cookie (issue 9, finding 6).
/// </summary>
public sealed class SessionTests : HubTestBase
{
    /// <summary>A client that sends exactly this Cookie header (a copy of a session someone kept).</summary>
    private HttpClient Replay(HubClient session)
    {
        var c = Hub.Anonymous();
        c.DefaultRequestHeaders.TryAddWithoutValidation("Cookie", session.CookieHeader);
        c.DefaultRequestHeaders.TryAddWithoutValidation(HubClaims.CsrfHeader, session.Cookie(HubClaims.CsrfCookie));
        return c;
    }

    [Fact]
    public async Task A_copied_session_cookie_stops_working_after_logout()
    {
        var alice = await UserAsync("alice");
        var copy = Replay(alice);
        await copy.GetAsync("api/v1/me").Expect(HttpStatusCode.OK);

        await alice.Http.PostAsync("api/v1/logout", null).Expect(HttpStatusCode.NoContent);

        await copy.GetAsync("api/v1/me").Expect(HttpStatusCode.Unauthorized);
        await alice.Http.GetAsync("api/v1/me").Expect(HttpStatusCode.Unauthorized);
    }

    [Fact]
    public async Task Logout_ends_only_that_session()
    {
        await CreateUserAsync("alice");
        var laptop = await UserAsync("alice", create: false);
        var phone = await UserAsync("alice", create: false);
        await laptop.Http.PostAsync("api/v1/logout", null).Expect(HttpStatusCode.NoContent);
        await phone.Http.GetAsync("api/v1/me").Expect(HttpStatusCode.OK);
    }

    [Fact]
    public async Task The_login_form_logout_ends_the_session_too()
    {
        var alice = await UserAsync("alice");
        var copy = Replay(alice);
        var form = await alice.Http.GetStringAsync("hub/login");
        var token = System.Text.RegularExpressions.Regex.Match(form, "name=\"__RequestVerificationToken\" value=\"([^\"]+)\"").Groups[1].Value;
        using var post = new HttpRequestMessage(HttpMethod.Post, "hub/logout")
        {
            Content = new FormUrlEncodedContent(new Dictionary<string, string> { ["__RequestVerificationToken"] = token }),
        };
        await alice.Http.SendAsync(post).Expect(HttpStatusCode.Redirect);
        await copy.GetAsync("api/v1/me").Expect(HttpStatusCode.Unauthorized);
    }

    [Fact]
    public async Task A_password_change_ends_every_other_session_and_keeps_the_one_that_made_it()
    {
        await CreateUserAsync("alice");
        var mine = await UserAsync("alice", create: false);
        var stolen = await UserAsync("alice", create: false);
        await mine.Http.PostAsJsonAsync("api/v1/me/password", new { currentPassword = PasswordOf("alice"), password = "a-new-password-1" })
            .Expect(HttpStatusCode.NoContent);

        await stolen.Http.GetAsync("api/v1/me").Expect(HttpStatusCode.Unauthorized);
        await mine.Http.GetAsync("api/v1/me").Expect(HttpStatusCode.OK);
        await Hub.NewClient().LoginAsync("alice", PasswordOf("alice")).Expect(HttpStatusCode.Unauthorized);
        await Hub.NewClient().LoginAsync("alice", "a-new-password-1").Expect(HttpStatusCode.OK);
    }

    [Fact]
    public async Task Changing_a_password_needs_the_current_one()
    {
        var alice = await UserAsync("alice");
        var missing = await alice.Http.PostAsJsonAsync("api/v1/me/password", new { password = "a-new-password-1" }).ExpectProblem(HttpStatusCode.BadRequest);
        Assert.Contains("currentPassword", missing.Str("detail"), StringComparison.Ordinal);
        await alice.Http.PostAsJsonAsync("api/v1/me/password", new { currentPassword = "not-my-password", password = "a-new-password-1" })
            .ExpectProblem(HttpStatusCode.Forbidden);
        await Hub.NewClient().LoginAsync("alice", PasswordOf("alice")).Expect(HttpStatusCode.OK);

        // A token is no way around it.
        var token = Hub.TokenClient((await CreateTokenAsync(alice)).Str("token"));
        await token.PostAsJsonAsync("api/v1/me/password", new { password = "a-new-password-1" }).ExpectProblem(HttpStatusCode.BadRequest);
        await token.PostAsJsonAsync("api/v1/me/password", new { currentPassword = "wrong-password", password = "a-new-password-1" }).ExpectProblem(HttpStatusCode.Forbidden);
        await Hub.NewClient().LoginAsync("alice", PasswordOf("alice")).Expect(HttpStatusCode.OK);
    }

    [Fact]
    public async Task Creating_a_token_from_a_browser_session_needs_the_current_password()
    {
        var alice = await UserAsync("alice");
        var missing = await alice.Http.PostAsJsonAsync("api/v1/tokens", new { name = "t" }).ExpectProblem(HttpStatusCode.BadRequest);
        Assert.Contains("password", missing.Str("detail"), StringComparison.Ordinal);
        await alice.Http.PostAsJsonAsync("api/v1/tokens", new { name = "t", password = "not-my-password" }).ExpectProblem(HttpStatusCode.Forbidden);
        await alice.Http.PostAsJsonAsync("api/v1/tokens", new { name = "t", password = PasswordOf("alice") }).Expect(HttpStatusCode.Created);

        // A token makes tokens (never with more scopes than its own) without a password.
        var token = Hub.TokenClient((await CreateTokenAsync(alice)).Str("token"));
        await token.PostAsJsonAsync("api/v1/tokens", new { name = "t2" }).Expect(HttpStatusCode.Created);
    }

    [Fact]
    public async Task Deleting_a_user_ends_their_sessions_even_when_the_name_is_made_again()
    {
        var alice = await UserAsync("alice");
        var copy = Replay(alice);
        var admin = await AdminAsync();
        await admin.Http.DeleteAsync("api/v1/users/alice").Expect(HttpStatusCode.NoContent);
        await copy.GetAsync("api/v1/me").Expect(HttpStatusCode.Unauthorized);
        await CreateUserAsync("alice");
        await copy.GetAsync("api/v1/me").Expect(HttpStatusCode.Unauthorized);
    }
}
