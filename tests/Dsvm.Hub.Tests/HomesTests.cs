using System.Net;
using System.Net.Http.Json;
using System.Text.Json;

namespace Dsvm.Hub.Tests;

/// <summary>
/// Homes belong to a user ID (issue 9): deleting a user orphans their homes, a new account of the same name never
/// inherits one, and only an admin's explicit reassign or purge moves or deletes one.
/// </summary>
public sealed class HomesTests : HubTestBase
{
    private static async Task<List<JsonElement>> HomesAsync(HubClient admin, string query = "") =>
        (await (await admin.Http.GetAsync("api/v1/homes" + query).Expect(HttpStatusCode.OK)).JsonAsync()).EnumerateArray().ToList();

    private static bool Orphaned(JsonElement h) => h.GetProperty("orphaned").GetBoolean();

    private static string? UsedBy(JsonElement h) => h.GetProperty("usedBy").ValueKind == JsonValueKind.Null ? null : h.Str("usedBy");

    [Fact]
    public async Task Deleting_a_user_orphans_their_home_and_a_new_account_of_that_name_gets_a_fresh_one()
    {
        var admin = await AdminAsync();
        var alice = await UserAsync("alice");
        await StartRunningAsync(alice.Http, "proj");
        var first = Assert.Single(await HomesAsync(admin));
        Assert.Equal("alice", first.Str("owner"));
        Assert.Equal("proj", UsedBy(first));
        Assert.False(Orphaned(first));

        await admin.Http.DeleteAsync("api/v1/users/alice").Expect(HttpStatusCode.NoContent);
        var all = await (await admin.Http.GetAsync("api/v1/workspaces?all=true").Expect(HttpStatusCode.OK)).JsonAsync();
        Assert.DoesNotContain(all.EnumerateArray(), w => w.Str("owner") == "alice");
        var orphan = Assert.Single(await HomesAsync(admin, "?orphaned=true"));
        Assert.Equal(first.Str("id"), orphan.Str("id"));
        Assert.Null(UsedBy(orphan));

        // The same name again is a stranger: a new home, the orphan untouched.
        var again = await UserAsync("alice");
        await StartRunningAsync(again.Http, "proj");
        var homes = await HomesAsync(admin);
        Assert.Equal(2, homes.Count);
        var fresh = Assert.Single(homes, h => !Orphaned(h));
        Assert.NotEqual(first.Str("id"), fresh.Str("id"));
        Assert.NotEqual(first.Str("volume"), fresh.Str("volume"));
        Assert.Equal("proj", UsedBy(fresh));
        Assert.Equal(first.Str("id"), Assert.Single(homes, Orphaned).Str("id"));
    }

    [Fact]
    public async Task An_admin_reassigns_an_orphaned_home_and_the_new_owner_works_in_it()
    {
        var admin = await AdminAsync();
        var alice = await UserAsync("alice");
        await StartRunningAsync(alice.Http, "thesis");
        await admin.Http.DeleteAsync("api/v1/users/alice").Expect(HttpStatusCode.NoContent);
        var orphan = Assert.Single(await HomesAsync(admin, "?orphaned=true"));

        var bob = await UserAsync("bob");
        var moved = await (await admin.Http.PostAsJsonAsync($"api/v1/homes/{orphan.Str("id")}/reassign", new { user = "bob", workspace = "restored" })
            .Expect(HttpStatusCode.OK)).JsonAsync();
        Assert.Equal("bob", moved.Str("owner"));
        Assert.False(Orphaned(moved));

        await StartRunningAsync(bob.Http, "restored");
        var home = Assert.Single(await HomesAsync(admin), h => h.Str("id") == orphan.Str("id"));
        Assert.Equal("restored", UsedBy(home));
        Assert.Equal(orphan.Str("volume"), home.Str("volume"));
        Assert.Single(await HomesAsync(admin)); // no second home was made for bob's "restored"
    }

    [Fact]
    public async Task Purge_deletes_only_an_unused_home_and_only_for_admins()
    {
        var admin = await AdminAsync();
        var alice = await UserAsync("alice");
        await StartRunningAsync(alice.Http, "proj");
        var home = Assert.Single(await HomesAsync(admin));

        await alice.Http.GetAsync("api/v1/homes").ExpectProblem(HttpStatusCode.Forbidden);
        await alice.Http.DeleteAsync($"api/v1/homes/{home.Str("id")}").ExpectProblem(HttpStatusCode.Forbidden);
        await admin.Http.DeleteAsync($"api/v1/homes/{home.Str("id")}").ExpectProblem(HttpStatusCode.Conflict);

        await admin.Http.DeleteAsync("api/v1/users/alice").Expect(HttpStatusCode.NoContent);
        await admin.Http.DeleteAsync($"api/v1/homes/{home.Str("id")}").Expect(HttpStatusCode.NoContent);
        Assert.Empty(await HomesAsync(admin));
        await admin.Http.DeleteAsync($"api/v1/homes/{home.Str("id")}").ExpectProblem(HttpStatusCode.NotFound);
    }

    [Fact]
    public async Task A_class_made_again_under_the_same_name_gets_fresh_homes()
    {
        // Found: tearing down seccls (homes kept) and creating seccls again gave seccls-01 the previous student's files.
        var admin = await AdminAsync();
        await ClassTests.CreateClassAsync(admin, "seccls", 2);
        await ClassTests.WaitAllRunningAsync(admin, "seccls", 2);
        var before = (await HomesAsync(admin)).Select(h => h.Str("id")).ToHashSet();
        Assert.Equal(2, before.Count);

        await admin.Http.DeleteAsync("api/v1/classes/seccls").Expect(HttpStatusCode.OK);
        Assert.All(await HomesAsync(admin), h => Assert.True(Orphaned(h)));

        await ClassTests.CreateClassAsync(admin, "seccls", 2);
        await ClassTests.WaitAllRunningAsync(admin, "seccls", 2);
        var live = (await HomesAsync(admin)).Where(h => !Orphaned(h)).ToList();
        Assert.Equal(2, live.Count);
        Assert.All(live, h => Assert.DoesNotContain(h.Str("id"), before));
        Assert.Equal(before, (await HomesAsync(admin, "?orphaned=true")).Select(h => h.Str("id")).ToHashSet());
    }
}
