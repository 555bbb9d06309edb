using System.Net;
using System.Net.Http.Json;

namespace Dsvm.Hub.Tests;

public sealed class AuthorizationTests : HubTestBase
{
    [Fact]
    public async Task A_non_admin_gets_403_on_users()
    {
        var alice = await UserAsync("alice");
        await alice.Http.GetAsync("api/v1/users").Expect(HttpStatusCode.Forbidden);
        await alice.Http.PostAsJsonAsync("api/v1/users", new { name = "mallory", password = "password-123" }).Expect(HttpStatusCode.Forbidden);
        await alice.Http.PutAsJsonAsync("api/v1/users/alice/quota", new { maxWorkspaces = 100 }).Expect(HttpStatusCode.Forbidden);
        var token = Hub.TokenClient((await CreateTokenAsync(alice)).Str("token"));
        await token.GetAsync("api/v1/users").Expect(HttpStatusCode.Forbidden);
    }

    [Fact]
    public async Task An_admin_lists_users()
    {
        await CreateUserAsync("alice");
        var admin = await AdminAsync();
        var users = await (await admin.Http.GetAsync("api/v1/users").Expect(HttpStatusCode.OK)).JsonAsync();
        Assert.Equal(["admin", "alice"], users.EnumerateArray().Select(u => u.Str("name")).ToArray());
        Assert.DoesNotContain("password", users.ToString(), StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public async Task Unauthenticated_requests_get_401_on_me()
    {
        await Hub.Anonymous().GetAsync("api/v1/me").Expect(HttpStatusCode.Unauthorized);
        await Hub.Anonymous().GetAsync("api/v1/workspaces").Expect(HttpStatusCode.Unauthorized);
    }
}
