using System.Net;
using System.Net.Http.Json;
using System.Text.Json;

namespace Dsvm.Hub.Tests;

public sealed class UnlimitedQuotaTests : HubTestBase
{
    private static JsonElement QuotaOf(JsonElement user) => user.GetProperty("quota");

    [Fact]
    public async Task Null_or_unlimited_lifts_a_limit_and_default_brings_the_hubs_back()
    {
        var alice = await UserTokenClientAsync("alice");
        var admin = await AdminAsync();

        // PUT: null is unlimited; a field left out is the hub's default (4 vCPUs, 1 GPU).
        var user = await (await admin.Http.PutAsJsonAsync("api/v1/users/alice/quota", new { maxWorkspaces = (int?)null }).Expect(HttpStatusCode.OK)).JsonAsync();
        Assert.Equal(JsonValueKind.Null, QuotaOf(user).GetProperty("maxWorkspaces").ValueKind);
        Assert.Equal(4, QuotaOf(user).GetProperty("maxVcpus").GetDouble());

        // PATCH changes only what it names; "unlimited" is the same as null.
        user = await (await admin.Http.PatchAsJsonAsync("api/v1/users/alice/quota", new { maxVcpus = "unlimited" }).Expect(HttpStatusCode.OK)).JsonAsync();
        Assert.Equal(JsonValueKind.Null, QuotaOf(user).GetProperty("maxWorkspaces").ValueKind);
        Assert.Equal(JsonValueKind.Null, QuotaOf(user).GetProperty("maxVcpus").ValueKind);
        Assert.Equal(1, QuotaOf(user).GetProperty("maxGpus").GetInt32());

        // Enforcement: four large workspaces (16 vCPUs, beyond the default 3 workspaces and 4 vCPUs) all start.
        for (var i = 1; i <= 4; i++)
        {
            await StartRunningAsync(alice, $"ws{i}", "large");
        }

        // Stored, not cached: a restarted hub reads the same.
        await Hub.DisposeAsync();
        var hub2 = await World.StartHubAsync(HubWorld.DefaultOptions());
        var admin2 = hub2.NewClient();
        await admin2.LoginAsync(HubWorld.AdminName, HubWorld.AdminPassword).Expect(HttpStatusCode.OK);
        var users = await (await admin2.Http.GetAsync("api/v1/users").Expect(HttpStatusCode.OK)).JsonAsync();
        var stored = users.EnumerateArray().Single(u => u.Str("name") == "alice");
        Assert.Equal(JsonValueKind.Null, QuotaOf(stored).GetProperty("maxVcpus").ValueKind);

        // "default" goes back to the hub's default, which is enforced again.
        user = await (await admin2.Http.PatchAsJsonAsync("api/v1/users/alice/quota", new { maxWorkspaces = "default" }).Expect(HttpStatusCode.OK)).JsonAsync();
        Assert.Equal(3, QuotaOf(user).GetProperty("maxWorkspaces").GetInt32());
        var token = await CreateTokenAsync(await LoginAsync(hub2, "alice"));
        var p = await hub2.TokenClient(token.Str("token")).PostAsJsonAsync("api/v1/workspaces", new { name = "ws5", environment = "minimal", size = "small" })
            .ExpectProblem(HttpStatusCode.Forbidden);
        Assert.Contains("at most 3 workspaces", p.Str("detail"), StringComparison.Ordinal);
    }

    private static async Task<HubClient> LoginAsync(TestHub hub, string name)
    {
        var c = hub.NewClient();
        await c.LoginAsync(name, PasswordOf(name)).Expect(HttpStatusCode.OK);
        return c;
    }

    [Theory]
    [InlineData("""{"maxVcpus": -1}""", "maxVcpus")]
    [InlineData("""{"maxWorkspaces": 1.5}""", "whole number")]
    [InlineData("""{"maxGpus": "lots"}""", "maxGpus")]
    [InlineData("""{"maxCpus": 2}""", "unknown quota field 'maxCpus'")]
    [InlineData("""[1, 2]""", "JSON object")]
    public async Task Bad_quota_values_are_400_naming_the_problem(string body, string expected)
    {
        await CreateUserAsync("bob");
        var admin = await AdminAsync();
        using var content = new StringContent(body, System.Text.Encoding.UTF8, "application/json");
        var p = await admin.Http.PatchAsync("api/v1/users/bob/quota", content).ExpectProblem(HttpStatusCode.BadRequest);
        Assert.Contains(expected, p.Str("detail"), StringComparison.Ordinal);
    }
}

/// <summary>The hub-wide default quota itself may be unlimited (null in configuration).</summary>
public sealed class UnlimitedDefaultQuotaTests : HubTestBase
{
    internal override HubOptions Options(HubOptions defaults) => defaults with { DefaultQuota = new Quota { MaxWorkspaces = null, MaxVcpus = null, MaxGpus = 0 } };

    [Fact]
    public async Task Users_on_an_unlimited_default_can_start_beyond_the_usual_limits()
    {
        var alice = await UserTokenClientAsync("alice");
        for (var i = 1; i <= 4; i++)
        {
            await StartRunningAsync(alice, $"ws{i}", "medium");
        }

        var me = await (await alice.GetAsync("api/v1/me").Expect(HttpStatusCode.OK)).JsonAsync();
        Assert.Equal(JsonValueKind.Null, me.GetProperty("quota").GetProperty("maxWorkspaces").ValueKind);
    }
}
