using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Dsvm.Hub.Auth;

namespace Dsvm.Hub.Tests;

public sealed class ClassTests : HubTestBase
{
    internal static async Task<JsonElement> CreateClassAsync(HubClient admin, string name, int count, bool prestart = true)
    {
        var r = await admin.Http.PostAsJsonAsync("api/v1/classes", new { name, environment = "minimal", size = "small", count, prestart }).Expect(HttpStatusCode.Created);
        return await r.JsonAsync();
    }

    internal static async Task WaitAllRunningAsync(HubClient admin, string @class, int count)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var last = "";
        while (!timeout.IsCancellationRequested)
        {
            var all = await (await admin.Http.GetAsync("api/v1/workspaces?all=true").Expect(HttpStatusCode.OK)).JsonAsync();
            var mine = all.EnumerateArray().Where(w => w.Str("name") == @class).ToList();
            last = all.ToString();
            if (mine.Count == count && mine.All(w => w.Str("state") == "running"))
            {
                return;
            }

            await Task.Delay(50);
        }

        Assert.Fail($"the class's workspaces did not all reach running: {last}");
    }

    [Fact]
    public async Task A_class_makes_users_who_can_log_in_and_a_running_workspace_each()
    {
        var admin = await AdminAsync();
        var created = await CreateClassAsync(admin, "stats101", 3);
        Assert.Equal("stats101", created.Str("class"));
        var users = created.GetProperty("users").EnumerateArray().ToList();
        Assert.Equal(["stats101-01", "stats101-02", "stats101-03"], users.Select(u => u.Str("name")));
        Assert.All(users, u => Assert.Equal(16, u.Str("password").Length));
        Assert.Equal(3, users.Select(u => u.Str("password")).Distinct().Count());

        await WaitAllRunningAsync(admin, "stats101", 3);
        foreach (var u in users)
        {
            var c = Hub.NewClient();
            var me = await (await c.LoginAsync(u.Str("name"), u.Str("password")).Expect(HttpStatusCode.OK)).JsonAsync();
            Assert.Equal("stats101", me.Str("group"));
            var mine = await (await c.Http.GetAsync("api/v1/workspaces").Expect(HttpStatusCode.OK)).JsonAsync();
            Assert.Equal($"/user/{u.Str("name")}/stats101/lab", Assert.Single(mine.EnumerateArray()).Str("url"));
        }

        var list = await (await admin.Http.GetAsync("api/v1/classes").Expect(HttpStatusCode.OK)).JsonAsync();
        var cls = Assert.Single(list.EnumerateArray());
        Assert.Equal("stats101", cls.Str("name"));
        Assert.Equal(3, cls.GetProperty("members").GetInt32());
        Assert.Equal(3, cls.GetProperty("running").GetInt32());

        // A second class of the same name is a conflict.
        await admin.Http.PostAsJsonAsync("api/v1/classes", new { name = "stats101", environment = "minimal", size = "small", count = 1 }).ExpectProblem(HttpStatusCode.Conflict);
    }

    [Fact]
    public async Task Exporting_credentials_issues_new_passwords_and_old_ones_stop_working()
    {
        var admin = await AdminAsync();
        var created = await CreateClassAsync(admin, "hack", 3, prestart: false);
        var old = created.GetProperty("users").EnumerateArray().ToDictionary(u => u.Str("name"), u => u.Str("password"));

        // From a browser session the export must carry the CSRF value.
        await admin.Http.GetAsync("api/v1/classes/hack/credentials.csv").ExpectProblem(HttpStatusCode.Forbidden);
        var r = await admin.Http.GetAsync($"api/v1/classes/hack/credentials.csv?csrf={admin.Cookie(HubClaims.CsrfCookie)}").Expect(HttpStatusCode.OK);
        Assert.Equal("text/csv", r.Content.Headers.ContentType?.MediaType);
        var lines = (await r.Content.ReadAsStringAsync()).Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal("user,password,url", lines[0]);
        Assert.Equal(4, lines.Length);
        foreach (var line in lines.Skip(1))
        {
            var cells = line.Split(',');
            Assert.Equal($"/user/{cells[0]}/hack/lab", cells[2]);
            Assert.NotEqual(old[cells[0]], cells[1]);
            await Hub.NewClient().LoginAsync(cells[0], old[cells[0]]).Expect(HttpStatusCode.Unauthorized);
            await Hub.NewClient().LoginAsync(cells[0], cells[1]).Expect(HttpStatusCode.OK);
        }

        await admin.Http.GetAsync($"api/v1/classes/nope/credentials.csv?csrf={admin.Cookie(HubClaims.CsrfCookie)}").ExpectProblem(HttpStatusCode.NotFound);
    }

    [Fact]
    public async Task Only_admins_manage_classes()
    {
        var bob = await UserAsync("bob");
        await bob.Http.PostAsJsonAsync("api/v1/classes", new { name = "c1", environment = "minimal", size = "small", count = 1 }).Expect(HttpStatusCode.Forbidden);
        await bob.Http.GetAsync("api/v1/classes").Expect(HttpStatusCode.Forbidden);
        await bob.Http.DeleteAsync("api/v1/classes/c1").Expect(HttpStatusCode.Forbidden);
        var token = Hub.TokenClient((await CreateTokenAsync(bob)).Str("token"));
        await token.GetAsync("api/v1/classes/c1/credentials.csv").Expect(HttpStatusCode.Forbidden);
    }

    [Fact]
    public async Task Teardown_deletes_workspaces_keeping_homes_by_default_and_removes_the_users()
    {
        var admin = await AdminAsync();
        await CreateClassAsync(admin, "ml", 3);
        await WaitAllRunningAsync(admin, "ml", 3);

        var r = await (await admin.Http.DeleteAsync("api/v1/classes/ml").Expect(HttpStatusCode.OK)).JsonAsync();
        Assert.Equal(3, r.GetProperty("users").GetInt32());
        Assert.Equal(3, r.GetProperty("workspaces").GetInt32());
        Assert.Equal(3, World.Backend.Deletes.Count);
        Assert.All(World.Backend.Deletes, d => Assert.True(d.KeepHome));

        var users = await (await admin.Http.GetAsync("api/v1/users").Expect(HttpStatusCode.OK)).JsonAsync();
        Assert.DoesNotContain(users.EnumerateArray(), u => u.Str("name").StartsWith("ml-", StringComparison.Ordinal));
        var all = await (await admin.Http.GetAsync("api/v1/workspaces?all=true").Expect(HttpStatusCode.OK)).JsonAsync();
        Assert.Equal(0, all.GetArrayLength());
        await admin.Http.DeleteAsync("api/v1/classes/ml").ExpectProblem(HttpStatusCode.NotFound);

        // With deleteHomes the homes go too.
        await CreateClassAsync(admin, "ml2", 1);
        await WaitAllRunningAsync(admin, "ml2", 1);
        await admin.Http.DeleteAsync("api/v1/classes/ml2?deleteHomes=true").Expect(HttpStatusCode.OK);
        Assert.False(World.Backend.Deletes.Last().KeepHome);
    }
}

public sealed class ClassStartLimitTests : HubTestBase
{
    internal override HubOptions Options(HubOptions defaults) => defaults with { MaxConcurrentStarts = 1 };

    [Fact]
    public async Task Prestarts_beyond_the_start_limit_are_queued_not_failed()
    {
        var admin = await AdminAsync();
        await ClassTests.CreateClassAsync(admin, "queue", 3);
        await ClassTests.WaitAllRunningAsync(admin, "queue", 3);
        Assert.Equal(3, World.Backend.Starts.Count);
    }
}
