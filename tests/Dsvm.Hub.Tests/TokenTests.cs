using System.Net;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text;
using Microsoft.Data.Sqlite;

namespace Dsvm.Hub.Tests;

public sealed class TokenTests : HubTestBase
{
    [Fact]
    public async Task A_user_creates_a_dsvm_token_that_is_shown_once_and_authenticates()
    {
        var alice = await UserAsync("alice");
        var created = await CreateTokenAsync(alice, name: "laptop");
        var secret = created.Str("token");
        Assert.StartsWith("dsvm_", secret, StringComparison.Ordinal);
        Assert.Equal("laptop", created.GetProperty("info").Str("name"));

        var me = await (await Hub.TokenClient(secret).GetAsync("api/v1/me").Expect(HttpStatusCode.OK)).JsonAsync();
        Assert.Equal("alice", me.Str("name"));
        Assert.False(me.GetProperty("admin").GetBoolean());

        // Listing tokens never shows a secret again.
        var list = await (await alice.Http.GetAsync("api/v1/tokens").Expect(HttpStatusCode.OK)).Content.ReadAsStringAsync();
        Assert.Contains("laptop", list, StringComparison.Ordinal);
        Assert.DoesNotContain(secret, list, StringComparison.Ordinal);
        Assert.DoesNotContain("dsvm_", list, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Only_the_sha256_of_a_token_is_stored_in_hub_db()
    {
        var alice = await UserAsync("alice");
        var secret = (await CreateTokenAsync(alice)).Str("token");
        var expected = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(secret)));

        var hashes = new List<string>();
        await using (var db = new SqliteConnection($"Data Source={World.AccountsDbFile};Mode=ReadOnly;Pooling=False"))
        {
            await db.OpenAsync();
            await using var cmd = db.CreateCommand();
            cmd.CommandText = "SELECT * FROM api_tokens";
            await using var reader = await cmd.ExecuteReaderAsync();
            while (await reader.ReadAsync())
            {
                for (var i = 0; i < reader.FieldCount; i++)
                {
                    var value = reader.IsDBNull(i) ? "" : Convert.ToString(reader.GetValue(i), System.Globalization.CultureInfo.InvariantCulture) ?? "";
                    Assert.DoesNotContain(secret, value, StringComparison.Ordinal);
                    Assert.DoesNotContain(secret[5..], value, StringComparison.Ordinal);
                }

                hashes.Add(reader.GetString(reader.GetOrdinal("Hash")));
            }
        }

        Assert.Equal(expected, Assert.Single(hashes));

        // Nor anywhere in the files (the WAL included).
        foreach (var file in Directory.GetFiles(World.Paths.Data, "hub.db*"))
        {
            byte[] bytes;
            try
            {
                bytes = await File.ReadAllBytesAsync(file);
            }
            catch (FileNotFoundException)
            {
                // The -wal (or -shm) file went between the listing and the read: SQLite checkpointed it into hub.db,
                // which is read too. (Seen once: the test failed on the vanished file, not on a secret.)
                continue;
            }

            Assert.Equal(-1, bytes.AsSpan().IndexOf(Encoding.UTF8.GetBytes(secret[5..])));
        }
    }

    [Fact]
    public async Task A_read_only_token_gets_403_when_starting_a_workspace()
    {
        var alice = await UserAsync("alice");
        var secret = (await CreateTokenAsync(alice, ["read"])).Str("token");
        var c = Hub.TokenClient(secret);
        await c.GetAsync("api/v1/workspaces").Expect(HttpStatusCode.OK);
        await c.PostAsJsonAsync("api/v1/workspaces", new { name = "ws1", environment = "minimal", size = "small" }).Expect(HttpStatusCode.Forbidden);
        Assert.Empty(World.Backend.Starts);
    }

    [Fact]
    public async Task A_non_admin_cannot_create_an_admin_scoped_token()
    {
        var alice = await UserAsync("alice");
        await alice.Http.PostAsJsonAsync("api/v1/tokens", new { name = "root", scopes = new[] { "admin" } }).ExpectProblem(HttpStatusCode.Forbidden);
        await alice.Http.PostAsJsonAsync("api/v1/tokens", new { name = "root", scopes = new[] { "read", "admin" } }).ExpectProblem(HttpStatusCode.Forbidden);
    }

    [Fact]
    public async Task A_token_cannot_make_a_token_with_more_scopes_than_it_has()
    {
        var alice = await UserAsync("alice");
        var c = Hub.TokenClient((await CreateTokenAsync(alice, ["read", "workspaces"])).Str("token"));
        await c.PostAsJsonAsync("api/v1/tokens", new { name = "x", scopes = new[] { "admin" } }).Expect(HttpStatusCode.Forbidden);
    }

    [Fact]
    public async Task A_revoked_token_is_401()
    {
        var alice = await UserAsync("alice");
        var created = await CreateTokenAsync(alice);
        var c = Hub.TokenClient(created.Str("token"));
        await c.GetAsync("api/v1/me").Expect(HttpStatusCode.OK);
        await alice.Http.DeleteAsync($"api/v1/tokens/{created.GetProperty("info").Str("id")}").Expect(HttpStatusCode.NoContent);
        await c.GetAsync("api/v1/me").Expect(HttpStatusCode.Unauthorized);
    }

    [Fact]
    public async Task An_expired_token_is_401()
    {
        var alice = await UserAsync("alice");
        var c = Hub.TokenClient((await CreateTokenAsync(alice, expiresInDays: 1)).Str("token"));
        await c.GetAsync("api/v1/me").Expect(HttpStatusCode.OK);
        World.Time.Advance(TimeSpan.FromHours(23));
        await c.GetAsync("api/v1/me").Expect(HttpStatusCode.OK);
        World.Time.Advance(TimeSpan.FromHours(2));
        await c.GetAsync("api/v1/me").Expect(HttpStatusCode.Unauthorized);
    }

    [Fact]
    public async Task A_made_up_token_is_401()
    {
        await Hub.TokenClient("dsvm_not-a-real-token").GetAsync("api/v1/me").Expect(HttpStatusCode.Unauthorized);
        await Hub.TokenClient("something-else").GetAsync("api/v1/me").Expect(HttpStatusCode.Unauthorized);
    }
}
