using System.Net;
using System.Net.Http.Json;
using System.Text;

namespace Dsvm.Hub.Tests;

/// <summary>
/// Null, missing, mistyped and out-of-range fields are 400 ProblemDetails naming the field, never a 500 (issue 12
/// finding 8, issue 9 finding 6); names end where they end (no trailing newline).
/// </summary>
public sealed class InputValidationTests : HubTestBase
{
    private static StringContent Json(string json) => new(json, Encoding.UTF8, "application/json");

    /// <summary>Posts raw JSON with the admin's session; asserts a 400 ProblemDetails whose detail names the field.</summary>
    private static async Task BadRequestNaming(HttpClient c, string path, string json, string field)
    {
        var problem = await c.PostAsync(path, Json(json)).ExpectProblem(HttpStatusCode.BadRequest);
        Assert.Contains(field, problem.Str("detail"), StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", problem.ToString(), StringComparison.Ordinal);
    }

    public static TheoryData<string, string, string> NullAndMissingFields() => new()
    {
        { "api/v1/workspaces", "{}", "name" },
        { "api/v1/workspaces", """{"name":null}""", "name" },
        { "api/v1/workspaces", """{"name":"ws1","size":null,"environment":7}""", "environment" },
        { "api/v1/users", """{"password":"long-enough-1"}""", "name" },
        { "api/v1/users", """{"name":"bob"}""", "password" },
        { "api/v1/users", """{"name":null,"password":null}""", "name" },
        { "api/v1/tokens", """{"password":"admin-password-1"}""", "name" },
        { "api/v1/tokens", """{"name":null,"password":"admin-password-1"}""", "name" },
        { "api/v1/tokens", """{"name":"t","scopes":[null],"password":"admin-password-1"}""", "scopes" },
        { "api/v1/tokens", """{"name":"t","expiresInDays":2147483647,"password":"admin-password-1"}""", "expiresInDays" },
        { "api/v1/tokens", """{"name":"t","expiresInDays":0,"password":"admin-password-1"}""", "expiresInDays" },
        { "api/v1/tokens", """{"name":"t","expiresInDays":99999999999,"password":"admin-password-1"}""", "expiresInDays" },
        { "api/v1/me/password", "{}", "password" },
        { "api/v1/me/password", """{"currentPassword":"admin-password-1"}""", "password" },
        { "api/v1/classes", """{"name":null,"count":2}""", "name" },
        { "api/v1/classes", """{"count":2}""", "name" },
        { "api/v1/classes", """{"name":"c1","count":"two"}""", "count" },
        { "api/v1/workspaces/admin/ws1/exec", """{"command":[null]}""", "command" },
    };

    [Theory]
    [MemberData(nameof(NullAndMissingFields))]
    public async Task A_null_missing_or_wrong_field_is_a_400_naming_it(string path, string json, string field)
    {
        var admin = await AdminAsync();
        await BadRequestNaming(admin.Http, path, json, field);
    }

    [Theory]
    [InlineData("""{"password":"x"}""", "name")]
    [InlineData("""{"name":"alice"}""", "password")]
    [InlineData("""{"name":null,"password":null}""", "name")]
    [InlineData("null", "body")]
    [InlineData("", "body")]
    public async Task Login_without_a_name_or_password_is_a_400(string json, string field)
    {
        await BadRequestNaming(Hub.Anonymous(), "api/v1/login", json, field);
    }

    [Fact]
    public async Task Resize_without_a_size_is_a_400()
    {
        var admin = await AdminAsync();
        await StartRunningAsync(admin.Http, "ws1");
        await BadRequestNaming(admin.Http, "api/v1/workspaces/admin/ws1/resize", "{}", "size");
    }

    [Fact]
    public async Task Malformed_json_is_a_400()
    {
        var admin = await AdminAsync();
        await admin.Http.PostAsync("api/v1/workspaces", Json("""{"name": """)).ExpectProblem(HttpStatusCode.BadRequest);
        await admin.Http.PostAsync("api/v1/workspaces?wait=maybe", Json("""{"name":"ws1"}""")).ExpectProblem(HttpStatusCode.BadRequest);
    }

    [Fact]
    public async Task Token_names_are_at_most_100_characters()
    {
        var admin = await AdminAsync();
        var problem = await admin.Http.PostAsJsonAsync("api/v1/tokens", new { name = new string('t', 101), password = HubWorld.AdminPassword })
            .ExpectProblem(HttpStatusCode.BadRequest);
        Assert.Contains("name", problem.Str("detail"), StringComparison.Ordinal);
        await CreateTokenAsync(admin, name: new string('t', 100));
    }

    [Fact]
    public async Task A_user_has_at_most_100_live_tokens()
    {
        var alice = await UserAsync("alice");
        var token = Hub.TokenClient((await CreateTokenAsync(alice)).Str("token"));
        for (var i = 1; i < 100; i++)
        {
            await token.PostAsJsonAsync("api/v1/tokens", new { name = $"t{i}" }).Expect(HttpStatusCode.Created);
        }

        var problem = await token.PostAsJsonAsync("api/v1/tokens", new { name = "one-too-many" }).ExpectProblem(HttpStatusCode.Conflict);
        Assert.Contains("100", problem.Str("detail"), StringComparison.Ordinal);

        // Expired tokens do not count.
        World.Time.Advance(TimeSpan.FromDays(31));
        var fresh = await UserAsync("alice", create: false);
        await CreateTokenAsync(fresh, name: "after-expiry");
    }

    [Theory]
    [InlineData("alice\n")]
    [InlineData("alice\r\n")]
    [InlineData("al\nice")]
    public async Task Names_with_a_newline_are_refused(string name)
    {
        var admin = await AdminAsync();
        await admin.Http.PostAsJsonAsync("api/v1/users", new { name, password = "long-enough-1" }).ExpectProblem(HttpStatusCode.BadRequest);
        await admin.Http.PostAsJsonAsync("api/v1/workspaces", new { name, environment = "minimal", size = "small" }).ExpectProblem(HttpStatusCode.BadRequest);
        await admin.Http.PostAsJsonAsync("api/v1/classes", new { name, count = 1, prestart = false }).ExpectProblem(HttpStatusCode.BadRequest);
        Assert.Empty(World.Backend.Starts);
        Assert.Empty(Directory.EnumerateFiles(World.Root, "*\n*", SearchOption.AllDirectories));
    }

    [Fact]
    public async Task A_proxy_path_with_an_encoded_newline_after_the_name_is_not_a_workspace()
    {
        var alice = await UserAsync("alice");
        await StartRunningAsync(alice.Http, "ws1");
        var r = await alice.Http.GetAsync("user/alice/ws1%0A");
        Assert.Equal(HttpStatusCode.NotFound, r.StatusCode);
        Assert.DoesNotContain(World.Backend.ServerFor("alice", "ws1")!.Requests,
            q => q.Contains('\n', StringComparison.Ordinal) || q.Contains("%0A", StringComparison.OrdinalIgnoreCase));
    }
}
