using Dsvm.Core.Workspaces;
using Dsvm.Hub;
using Dsvm.Hub.Data;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Infrastructure;

namespace Dsvm.Data.Tests;

/// <summary>
/// What every workspace store must do, whatever the database. Each provider's test class runs these against an empty
/// database of its own. Timestamps are compared to the microsecond: PostgreSQL's precision.
/// </summary>
public abstract class WorkspaceStoreContract<TDatabase> : IDisposable where TDatabase : ITestDatabase, new()
{
    private readonly Lazy<TDatabase> _db = new(() => new TDatabase());

    protected TDatabase Db => _db.Value;

    protected static readonly CancellationToken Ct = CancellationToken.None;

    public const string HomesMigration = "20261205000001_Homes";

    public void Dispose()
    {
        if (_db.IsValueCreated)
        {
            _db.Value.Dispose();
        }

        GC.SuppressFinalize(this);
    }

    protected static Workspace Sample(string name = "proj", string owner = "alice", string? id = null) => new()
    {
        Id = id ?? $"ws-{Guid.NewGuid():N}"[..15],
        Name = name,
        Owner = owner,
        Environment = "datascience",
        Image = "dsvm/datascience:sha256-0123",
        Size = "gpu-small",
        Backend = "docker",
        HomeVolume = "dsvm-home-h-0123456789ab",
        OwnerId = "u-" + owner,
        HomeId = "h-0123456789ab",
        Token = new string('a', 32) + new string('f', 32),
        State = WorkspaceState.Running,
        ContainerId = "3f2a9c0d1b7e",
        Endpoint = "http://127.0.0.1:49153/",
        GpuEnabled = true,
        CpuFallback = true,
        LastError = "found stopped at 2025-01-02 03:04:05Z (exited, exit code 137) — ünïcode",
        CreatedAt = new DateTimeOffset(2025, 1, 2, 3, 4, 5, 678, TimeSpan.FromHours(2)).AddTicks(1230),
        StartedAt = new DateTimeOffset(2025, 1, 2, 3, 5, 0, 1, TimeSpan.FromHours(-5)).AddTicks(10),
        UpdatedAt = new DateTimeOffset(2025, 6, 30, 23, 59, 59, 999, TimeSpan.Zero).AddTicks(9990),
        BackendState = """{"container":"3f2a9c0d1b7e","name":"dsvm-alice-proj","node":{"id":7}}""",
    };

    protected async Task MigrationsApplyOnEmptyDatabaseAndAreIdempotent()
    {
        // A store migrates before its first operation (SQLite's opens in the background).
        Assert.Empty(await Db.CreateStore().ListAsync(null, Ct));
        await using (var db = new DsvmDbContext(Db.Options<DsvmDbContext>()))
        {
            Assert.Equal([DatabaseMigrations.InitialMigration, DatabaseMigrations.WorkspaceVersionMigration, HomesMigration], await db.Database.GetAppliedMigrationsAsync(Ct));
            Assert.Empty(await db.Database.GetPendingMigrationsAsync(Ct));
            Assert.False(DatabaseMigrations.BaselineEnsureCreated(db, EfWorkspaceStore.ProbeTable));

            // A second migrate (and a second store on the same database) changes nothing.
            await DatabaseMigrations.MigrateAsync(db, EfWorkspaceStore.ProbeTable, Ct);
            await db.Database.MigrateAsync(Ct);
            Assert.Equal([DatabaseMigrations.InitialMigration, DatabaseMigrations.WorkspaceVersionMigration, HomesMigration], await db.Database.GetAppliedMigrationsAsync(Ct));
        }

        var again = Db.CreateStore();
        Assert.Empty(await again.ListAsync(null, Ct));
    }

    protected async Task SaveFindListDeleteRoundTripsEveryField()
    {
        var store = Db.CreateStore();
        var ws = await store.SaveAsync(Sample(), Ct);
        Assert.Equal(1, ws.Version);
        var found = await Db.CreateStore().FindAsync("alice", "proj", Ct);

        Assert.NotNull(found);
        Assert.Equal(ws, found);
        Assert.Equal(ws.CreatedAt.UtcTicks, found.CreatedAt.UtcTicks);
        Assert.Equal(ws.StartedAt!.Value.UtcTicks, found.StartedAt!.Value.UtcTicks);
        Assert.Equal(ws.UpdatedAt.UtcTicks, found.UpdatedAt.UtcTicks);
        Assert.Equal(ws.State, found.State);
        Assert.Equal(ws.LastError, found.LastError);
        Assert.Equal(ws.BackendState, found.BackendState);
        Assert.Equal([ws], await store.ListAsync(null, Ct));
        Assert.Equal([ws], await store.ListAsync("alice", Ct));
        Assert.Empty(await store.ListAsync("bob", Ct));

        // An update keeps the id and clears what became null.
        var stopped = ws with
        {
            State = WorkspaceState.Stopped, ContainerId = null, Endpoint = null, LastError = null, StartedAt = null,
            GpuEnabled = false, UpdatedAt = ws.UpdatedAt.AddMinutes(5),
        };
        stopped = await store.SaveAsync(stopped, Ct);
        Assert.Equal(2, stopped.Version);
        Assert.Equal([stopped], await store.ListAsync(null, Ct));
        var reread = await store.FindAsync("alice", "proj", Ct);
        Assert.Null(reread!.StartedAt);
        Assert.Null(reread.ContainerId);

        await store.DeleteAsync(stopped, Ct);
        Assert.Null(await store.FindAsync("alice", "proj", Ct));
        Assert.Empty(await store.ListAsync(null, Ct));
        await store.DeleteAsync(stopped, Ct);
    }

    protected async Task WritesCompareTheVersion_SoStaleCopiesNeitherOverwriteNorResurrect()
    {
        var store = Db.CreateStore();
        var v1 = await store.SaveAsync(Sample(), Ct);
        var v2 = await Db.CreateStore().SaveAsync(v1 with { Size = "large" }, Ct);

        // A reader still holding version 1 cannot overwrite version 2.
        await Assert.ThrowsAsync<StaleWorkspaceException>(() => store.SaveAsync(v1 with { State = WorkspaceState.Stopped }, Ct));
        Assert.Equal(v2, await store.FindAsync("alice", "proj", Ct));
        // ...nor delete it.
        await Assert.ThrowsAsync<StaleWorkspaceException>(() => store.DeleteAsync(v1, Ct));
        Assert.NotNull(await store.FindAsync("alice", "proj", Ct));
        // Inserting a record that exists is refused.
        await Assert.ThrowsAsync<StaleWorkspaceException>(() => store.SaveAsync(v1 with { Version = 0 }, Ct));

        // Once deleted, no copy of any version comes back.
        await store.DeleteAsync(v2, Ct);
        await Assert.ThrowsAsync<StaleWorkspaceException>(() => store.SaveAsync(v2, Ct));
        await Assert.ThrowsAsync<StaleWorkspaceException>(() => store.SaveAsync(v1, Ct));
        Assert.Empty(await store.ListAsync(null, Ct));
    }

    protected async Task ConcurrentWritersOfOneVersion_ExactlyOneWins()
    {
        var v1 = await Db.CreateStore().SaveAsync(Sample(), Ct);
        var results = await Task.WhenAll(Enumerable.Range(0, 8).Select(async i =>
        {
            try
            {
                await Db.CreateStore().SaveAsync(v1 with { LastError = $"writer {i}" }, Ct);
                return true;
            }
            catch (StaleWorkspaceException)
            {
                return false;
            }
        }));

        Assert.Equal(1, results.Count(r => r));
        Assert.Equal(2, (await Db.CreateStore().FindAsync("alice", "proj", Ct))!.Version);
    }

    protected async Task HomesRoundTrip_AndAreFoundByOwnerIdNotOrphaned()
    {
        var store = Db.CreateStore();
        var home = new Home
        {
            Id = "h-0000000000a1", OwnerId = "u-a11ce0000000", Owner = "alice", Name = "proj", Backend = "docker", Volume = "dsvm-home-h-0000000000a1",
            CreatedAt = new DateTimeOffset(2025, 1, 2, 3, 4, 5, 678, TimeSpan.FromHours(2)),
        };
        await store.SaveHomeAsync(home, Ct);
        await store.SaveHomeAsync(home with { Id = "h-0000000000b1", OwnerId = "u-b0b000000000", Owner = "bob", Volume = "v-b" }, Ct);

        Assert.Equal(home, await Db.CreateStore().FindHomeAsync("u-a11ce0000000", "proj", Ct));
        Assert.Equal(home, await store.GetHomeAsync(home.Id, Ct));
        Assert.Null(await store.FindHomeAsync("u-someone-else", "proj", Ct));
        Assert.Null(await store.FindHomeAsync("u-a11ce0000000", "other", Ct));
        Assert.Equal(["h-0000000000a1"], (await store.ListHomesAsync("u-a11ce0000000", Ct)).Select(h => h.Id));
        Assert.Equal(2, (await store.ListHomesAsync(null, Ct)).Count);

        var orphaned = home with { OrphanedAt = new DateTimeOffset(2025, 2, 3, 4, 5, 6, TimeSpan.Zero) };
        await store.SaveHomeAsync(orphaned, Ct);
        Assert.Null(await store.FindHomeAsync("u-a11ce0000000", "proj", Ct));
        Assert.Equal(orphaned.OrphanedAt, (await store.GetHomeAsync(home.Id, Ct))!.OrphanedAt);

        await store.DeleteHomeAsync(home.Id, Ct);
        Assert.Null(await store.GetHomeAsync(home.Id, Ct));
        Assert.Single(await store.ListHomesAsync(null, Ct));
    }

    protected async Task ADatabaseOfTheFirstSchema_IsMigrated_AndItsRecordsReadWithEmptyIds()
    {
        await using (var db = new DsvmDbContext(Db.Options<DsvmDbContext>()))
        {
            await db.GetService<Microsoft.EntityFrameworkCore.Migrations.IMigrator>().MigrateAsync(DatabaseMigrations.InitialMigration, Ct);
            await db.Database.ExecuteSqlRawAsync(
                "INSERT INTO workspaces (\"Id\", \"Name\", \"Owner\", \"Environment\", \"Image\", \"Size\", \"Backend\", \"HomeVolume\", \"Token\", \"State\", " +
                "\"GpuEnabled\", \"CpuFallback\", \"CreatedAt\", \"UpdatedAt\", \"BackendState\") VALUES ('ws-00000000old1', 'data', 'alice-x', 'minimal', 'i', 'small', " +
                "'docker', 'dsvm-home-alice-x-data', 't', 'Stopped', false, false, '2025-01-01 00:00:00', '2025-01-01 00:00:00', '{{}}')", Ct);
        }

        var store = Db.CreateStore();
        var w = await store.FindAsync("alice-x", "data", Ct);
        Assert.Equal(("", "", "dsvm-home-alice-x-data"), (w!.OwnerId, w.HomeId, w.HomeVolume));
        Assert.Empty(await store.ListHomesAsync(null, Ct));
    }

    protected async Task ListIsOrderedByOwnerThenName()
    {
        var store = Db.CreateStore();
        foreach (var (owner, name) in new[] { ("bob", "b"), ("alice", "zeta"), ("bob", "a"), ("alice", "alpha") })
        {
            await store.SaveAsync(Sample(name, owner), Ct);
        }

        Assert.Equal(["alice/alpha", "alice/zeta", "bob/a", "bob/b"], (await store.ListAsync(null, Ct)).Select(w => $"{w.Owner}/{w.Name}"));
        Assert.Equal(["alpha", "zeta"], (await store.ListAsync("alice", Ct)).Select(w => w.Name));
    }

    protected async Task OwnerAndNameAreUnique()
    {
        var store = Db.CreateStore();
        await store.SaveAsync(Sample(id: "ws-000000000001"), Ct);
        await Assert.ThrowsAsync<StaleWorkspaceException>(() => store.SaveAsync(Sample(id: "ws-000000000002"), Ct));
        await store.SaveAsync(Sample(owner: "bob", id: "ws-000000000003"), Ct);

        Assert.Equal("ws-000000000001", (await store.FindAsync("alice", "proj", Ct))?.Id);
        Assert.Equal(2, (await store.ListAsync(null, Ct)).Count);
    }

    protected async Task AccountsCreateUserVerifyPasswordAndTokens()
    {
        // The workspace store and the accounts share one database with PostgreSQL: their migrations must not collide.
        var store = Db.CreateStore();
        var accounts = new Accounts(Db.Options<HubDbContext>(), new HubOptions(), TimeProvider.System);
        await accounts.InitializeAsync(Ct);
        await accounts.InitializeAsync(Ct);
        await store.SaveAsync(Sample(), Ct);

        var alice = await accounts.CreateUserAsync("alice", "correct horse", isAdmin: false, group: "class-1", Ct);
        Assert.Equal("alice", (await accounts.VerifyPasswordAsync("alice", "correct horse", Ct))?.Name);
        Assert.Null(await accounts.VerifyPasswordAsync("alice", "wrong password", Ct));
        Assert.Null(await accounts.VerifyPasswordAsync("nobody", "correct horse", Ct));
        Assert.Equal("class-1", (await accounts.FindUserAsync("alice", Ct))?.Group);

        var (secret, info) = await accounts.CreateTokenAsync(alice, "ci", [Scopes.Read, Scopes.Workspaces], TimeSpan.FromDays(1), Ct);
        var validated = await accounts.ValidateTokenAsync(secret, Ct);
        Assert.NotNull(validated);
        Assert.Equal("alice", validated.Value.User.Name);
        Assert.Equal([Scopes.Read, Scopes.Workspaces], validated.Value.Scopes);
        Assert.Null(await accounts.ValidateTokenAsync(secret + "x", Ct));

        var listed = Assert.Single(await accounts.ListTokensAsync(alice, Ct));
        Assert.Equal(info.Id, listed.Id);
        Assert.NotNull(listed.LastUsedAt);
        Assert.True(listed.ExpiresAt > DateTimeOffset.UtcNow);
        await accounts.RevokeTokenAsync(alice, info.Id, Ct);
        Assert.Null(await accounts.ValidateTokenAsync(secret, Ct));
        Assert.Single(await store.ListAsync(null, Ct));

        // Unlimited quotas are stored (-1), "default" goes back to the hub's; OpenID Connect links are unique.
        var unlimited = await accounts.SetQuotaAsync("alice", new QuotaChange(QuotaSetting.Unlimited, QuotaSetting.Of(2.5), null), Ct);
        Assert.Equal(new Quota { MaxWorkspaces = null, MaxVcpus = 2.5, MaxGpus = 1 }, unlimited.Quota);
        Assert.Equal(unlimited.Quota, (await accounts.FindUserAsync("alice", Ct))!.Quota);
        Assert.Equal(new Quota(), (await accounts.SetQuotaAsync("alice", new QuotaChange(QuotaSetting.Default, QuotaSetting.Default, QuotaSetting.Default), Ct)).Quota);
        var bob = await accounts.CreateExternalUserAsync("bob", "https://idp.example", "sub-1", isAdmin: false, new Quota { MaxVcpus = null }, Ct);
        Assert.Equal("bob", (await accounts.FindExternalAsync("https://idp.example", "sub-1", Ct))?.Name);
        Assert.Null(await accounts.FindExternalAsync("https://other.example", "sub-1", Ct));
        Assert.Null(bob.Quota.MaxVcpus);
        Assert.Null(await accounts.VerifyPasswordAsync("bob", "", Ct));
        await Assert.ThrowsAnyAsync<DbUpdateException>(() => accounts.LinkExternalAsync("alice", "https://idp.example", "sub-1", null, Ct));
    }
}

public sealed class SqliteWorkspaceStoreContractTests : WorkspaceStoreContract<SqliteTestDatabase>
{
    [Fact]
    public Task Migrations_ApplyOnEmptyDatabase_AndAreIdempotent() => MigrationsApplyOnEmptyDatabaseAndAreIdempotent();

    [Fact]
    public Task SaveFindListDelete_RoundTripsEveryField() => SaveFindListDeleteRoundTripsEveryField();

    [Fact]
    public Task List_IsOrderedByOwnerThenName() => ListIsOrderedByOwnerThenName();

    [Fact]
    public Task Writes_CompareTheVersion() => WritesCompareTheVersion_SoStaleCopiesNeitherOverwriteNorResurrect();

    [Fact]
    public Task ConcurrentWriters_ExactlyOneWins() => ConcurrentWritersOfOneVersion_ExactlyOneWins();

    [Fact]
    public Task Homes_RoundTrip_AndAreFoundByOwnerId_NotOrphaned() => HomesRoundTrip_AndAreFoundByOwnerIdNotOrphaned();

    [Fact]
    public Task FirstSchema_IsMigrated_RecordsReadWithEmptyIds() => ADatabaseOfTheFirstSchema_IsMigrated_AndItsRecordsReadWithEmptyIds();

    [Fact]
    public Task OwnerAndName_AreUnique() => OwnerAndNameAreUnique();

    [Fact]
    public Task Accounts_CreateUser_VerifyPassword_AndTokens() => AccountsCreateUserVerifyPasswordAndTokens();

    [Fact]
    public async Task DatabaseFile_IsOwnerOnly_AndInWalMode()
    {
        Assert.Empty(await Db.CreateStore().ListAsync(null, Ct));
        if (!OperatingSystem.IsWindows())
        {
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(Db.File));
        }

        using var db = new DsvmDbContext(Db.Options<DsvmDbContext>());
        Assert.Equal("wal", db.Database.SqlQueryRaw<string>("PRAGMA journal_mode").AsEnumerable().Single());
    }
}

public sealed class PostgresWorkspaceStoreContractTests : WorkspaceStoreContract<PostgresTestDatabase>
{
    [PostgresFact]
    public Task Migrations_ApplyOnEmptyDatabase_AndAreIdempotent() => MigrationsApplyOnEmptyDatabaseAndAreIdempotent();

    [PostgresFact]
    public Task SaveFindListDelete_RoundTripsEveryField() => SaveFindListDeleteRoundTripsEveryField();

    [PostgresFact]
    public Task List_IsOrderedByOwnerThenName() => ListIsOrderedByOwnerThenName();

    [PostgresFact]
    public Task Writes_CompareTheVersion() => WritesCompareTheVersion_SoStaleCopiesNeitherOverwriteNorResurrect();

    [PostgresFact]
    public Task ConcurrentWriters_ExactlyOneWins() => ConcurrentWritersOfOneVersion_ExactlyOneWins();

    [PostgresFact]
    public Task Homes_RoundTrip_AndAreFoundByOwnerId_NotOrphaned() => HomesRoundTrip_AndAreFoundByOwnerIdNotOrphaned();

    [PostgresFact]
    public Task FirstSchema_IsMigrated_RecordsReadWithEmptyIds() => ADatabaseOfTheFirstSchema_IsMigrated_AndItsRecordsReadWithEmptyIds();

    [PostgresFact]
    public Task OwnerAndName_AreUnique() => OwnerAndNameAreUnique();

    [PostgresFact]
    public Task Accounts_CreateUser_VerifyPassword_AndTokens() => AccountsCreateUserVerifyPasswordAndTokens();

    [PostgresFact]
    public async Task Migrations_LetPostgresMapTheColumnTypes()
    {
        Assert.Empty(await Db.CreateStore().ListAsync(null, Ct));
        await new Accounts(Db.Options<HubDbContext>(), new HubOptions(), TimeProvider.System).InitializeAsync(CancellationToken.None);
        await using var db = new DsvmDbContext(Db.Options<DsvmDbContext>());
        var types = await db.Database.SqlQueryRaw<string>(
                "SELECT table_name || '.' || column_name || ' ' || data_type AS \"Value\" FROM information_schema.columns WHERE table_schema = 'public'")
            .ToListAsync();
        Assert.Contains("workspaces.CreatedAt timestamp with time zone", types);
        Assert.Contains("workspaces.StartedAt timestamp with time zone", types);
        Assert.Contains("workspaces.GpuEnabled boolean", types);
        Assert.Contains("workspaces.State text", types);
        Assert.Contains("workspaces.Version bigint", types);
        Assert.Contains("workspaces.OwnerId text", types);
        Assert.Contains("homes.OrphanedAt timestamp with time zone", types);
        Assert.Contains("users.MaxVcpus double precision", types);
        Assert.Contains("users.ExternalSubject text", types);
        Assert.Contains("api_tokens.ExpiresAt timestamp with time zone", types);
        Assert.Contains("__EFMigrationsHistory.MigrationId character varying", types);
        Assert.Contains("__EFMigrationsHistory_hub.MigrationId character varying", types);
    }
}
