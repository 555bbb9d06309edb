using System.Net;
using System.Text.RegularExpressions;
using Dsvm.Hub.Api;
using Dsvm.Hub.Auth;

namespace Dsvm.Hub.Tests;

public sealed partial class LoginFormTests : HubTestBase
{
    private const string AntiforgeryField = "__RequestVerificationToken";

    [GeneratedRegex("<input type=\"hidden\" name=\"([^\"]+)\" value=\"([^\"]*)\">")]
    private static partial Regex HiddenField();

    /// <summary>GET /hub/login and read its hidden fields (the antiforgery token, next).</summary>
    private static async Task<Dictionary<string, string>> FormAsync(HubClient c, string query = "")
    {
        var r = await c.Http.GetAsync("hub/login" + query).Expect(HttpStatusCode.OK);
        Assert.Equal("text/html", r.Content.Headers.ContentType?.MediaType);
        var html = await r.Content.ReadAsStringAsync();
        return HiddenField().Matches(html).ToDictionary(m => m.Groups[1].Value, m => WebUtility.HtmlDecode(m.Groups[2].Value));
    }

    private static Task<HttpResponseMessage> PostAsync(HubClient c, Dictionary<string, string> fields) =>
        c.Http.PostAsync("hub/login", new FormUrlEncodedContent(fields));

    [Fact]
    public async Task The_login_form_has_an_antiforgery_field_and_cookie()
    {
        var c = Hub.NewClient();
        var fields = await FormAsync(c);
        Assert.False(string.IsNullOrEmpty(fields[AntiforgeryField]));
        Assert.Equal("/hub/", fields["next"]);
        Assert.False(string.IsNullOrEmpty(c.Cookie("dsvm-antiforgery")));
    }

    [Fact]
    public async Task The_login_form_keeps_a_safe_next_and_drops_an_unsafe_one()
    {
        Assert.Equal("/user/alice/ws1/lab", (await FormAsync(Hub.NewClient(), "?next=%2Fuser%2Falice%2Fws1%2Flab"))["next"]);
        Assert.Equal("/hub/", (await FormAsync(Hub.NewClient(), "?next=%2F%2Fevil.example"))["next"]);
    }

    [Fact]
    public async Task Posting_without_the_antiforgery_token_is_400()
    {
        var c = Hub.NewClient();
        await FormAsync(c);
        var r = await PostAsync(c, new() { ["name"] = HubWorld.AdminName, ["password"] = HubWorld.AdminPassword, ["next"] = "/hub/" });
        Assert.Equal(HttpStatusCode.BadRequest, r.StatusCode);
        Assert.Null(c.Cookie(HubClaims.CookieName));
    }

    [Fact]
    public async Task Posting_with_a_token_but_without_its_cookie_is_400()
    {
        var fields = await FormAsync(Hub.NewClient());
        var other = Hub.NewClient();
        fields["name"] = HubWorld.AdminName;
        fields["password"] = HubWorld.AdminPassword;
        var r = await PostAsync(other, fields);
        Assert.Equal(HttpStatusCode.BadRequest, r.StatusCode);
        Assert.Null(other.Cookie(HubClaims.CookieName));
    }

    [Theory]
    [InlineData("//evil.example", "/hub/")]
    [InlineData("https://evil.example", "/hub/")]
    [InlineData("/\\evil.example", "/hub/")]
    [InlineData("/user/alice/ws1/lab", "/user/alice/ws1/lab")]
    public async Task A_successful_login_redirects_only_to_local_paths(string next, string expected)
    {
        var c = Hub.NewClient();
        var fields = await FormAsync(c);
        fields["name"] = HubWorld.AdminName;
        fields["password"] = HubWorld.AdminPassword;
        fields["next"] = next;
        var r = await PostAsync(c, fields).Expect(HttpStatusCode.Redirect);
        Assert.Equal(expected, r.Headers.Location?.OriginalString);
        Assert.False(string.IsNullOrEmpty(c.Cookie(HubClaims.CookieName)));
        Assert.False(string.IsNullOrEmpty(c.Cookie(HubClaims.CsrfCookie)));
        await c.Http.GetAsync("api/v1/me").Expect(HttpStatusCode.OK);
    }

    [Fact]
    public async Task A_wrong_password_redirects_back_to_the_form_with_an_error()
    {
        var c = Hub.NewClient();
        var fields = await FormAsync(c);
        fields["name"] = HubWorld.AdminName;
        fields["password"] = "wrong-password";
        fields["next"] = "/user/admin/x/lab";
        var r = await PostAsync(c, fields).Expect(HttpStatusCode.Redirect);
        Assert.Equal("/hub/login?error=1&next=%2Fuser%2Fadmin%2Fx%2Flab", r.Headers.Location?.OriginalString);
        Assert.Null(c.Cookie(HubClaims.CookieName));
    }

    [Theory]
    [InlineData(null, "/hub/")]
    [InlineData("", "/hub/")]
    [InlineData("/", "/")]
    [InlineData("/hub/", "/hub/")]
    [InlineData("/user/alice/ws1/lab?x=1", "/user/alice/ws1/lab?x=1")]
    [InlineData("//evil.example", "/hub/")]
    [InlineData("//evil.example/user/alice", "/hub/")]
    [InlineData("/\\evil.example", "/hub/")]
    [InlineData("/user\\..\\x", "/hub/")]
    [InlineData("https://evil.example", "/hub/")]
    [InlineData("http:/evil.example", "/hub/")]
    [InlineData("javascript:alert(1)", "/hub/")]
    [InlineData("evil.example", "/hub/")]
    [InlineData("/\t/evil.example", "/hub/")]
    [InlineData("/hub/\r\nSet-Cookie: x=y", "/hub/")]
    public void SafeNext_allows_only_local_paths(string? next, string expected) =>
        Assert.Equal(expected, LoginPage.SafeNext(next));
}
