using Dsvm.Core.Workspaces;
using Dsvm.Hub;
using Dsvm.Hub.Data;
using Microsoft.EntityFrameworkCore;

namespace Dsvm.Data.Tests;

/// <summary>SQLite files made before migrations (by EnsureCreated: tables, no history) keep their data.</summary>
public sealed class EnsureCreatedCompatibilityTests : IDisposable
{
    private readonly SqliteTestDatabase _db = new();

    public void Dispose() => _db.Dispose();

    [Fact]
    public async Task WorkspaceFile_MadeByEnsureCreated_IsBaselined_NotRecreated()
    {
        var options = new DbContextOptionsBuilder<DsvmDbContext>().UseSqlite($"Data Source={_db.File}").Options;
        Directory.CreateDirectory(Path.GetDirectoryName(_db.File)!);
        await using (var old = new DsvmDbContext(options))
        {
            Assert.True(await old.Database.EnsureCreatedAsync());
            // The first versions' schema: before the version column, homes and IDs (the later migrations must then apply).
            await old.Database.ExecuteSqlRawAsync(
                "DROP TABLE homes; ALTER TABLE workspaces DROP COLUMN \"OwnerId\"; ALTER TABLE workspaces DROP COLUMN \"HomeId\"; ALTER TABLE workspaces DROP COLUMN \"Version\";");
        }

        await using (var old = new DsvmDbContext(options))
        {
            await old.Database.ExecuteSqlRawAsync(
                "INSERT INTO workspaces (\"Id\", \"Name\", \"Owner\", \"Environment\", \"Image\", \"Size\", \"Backend\", \"HomeVolume\", \"Token\", \"State\", " +
                "\"GpuEnabled\", \"CpuFallback\", \"CreatedAt\", \"UpdatedAt\", \"BackendState\") VALUES ('ws-old', 'legacy', 'alice', 'datascience', '', '', '', '', '', 'Stopped', 0, 0, '1970-01-01 00:00:00', '1970-01-01 00:00:00', '{{}}')");
        }

        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        var store = WorkspaceStores.Sqlite(_db.File);
        Assert.Equal(1, (await store.FindAsync("alice", "legacy", CancellationToken.None))?.Version);
        Assert.Equal("ws-old", (await store.FindAsync("alice", "legacy", CancellationToken.None))?.Id);
        await store.SaveAsync(new Workspace
        {
            Id = "ws-new", Name = "fresh", Owner = "alice", Environment = "datascience", Image = "i", Size = "s", Backend = "docker",
            HomeVolume = "v", Token = "t", CreatedAt = DateTimeOffset.UtcNow, UpdatedAt = DateTimeOffset.UtcNow,
        }, CancellationToken.None);
        Assert.Equal(2, (await WorkspaceStores.Sqlite(_db.File).ListAsync(null, CancellationToken.None)).Count);

        await using var db = new DsvmDbContext(_db.Options<DsvmDbContext>());
        Assert.Equal(
            [DatabaseMigrations.InitialMigration, DatabaseMigrations.WorkspaceVersionMigration, SqliteWorkspaceStoreContractTests.HomesMigration],
            await db.Database.GetAppliedMigrationsAsync());
    }

    [Fact]
    public async Task HubFile_MadeByEnsureCreated_IsBaselined_NotRecreated()
    {
        var options = new DbContextOptionsBuilder<HubDbContext>().UseSqlite($"Data Source={_db.HubFile}").Options;
        Directory.CreateDirectory(Path.GetDirectoryName(_db.HubFile)!);
        var accounts = new Accounts(options, new HubOptions(), TimeProvider.System);
        await using (var old = new HubDbContext(options))
        {
            Assert.True(await old.Database.EnsureCreatedAsync());
        }

        await accounts.CreateUserAsync("alice", "correct horse", isAdmin: true, group: null, CancellationToken.None);
        await using (var old = new HubDbContext(options))
        {
            // The first versions' schema: before the OpenID Connect columns and the sessions table (later migrations must then apply).
            await old.Database.ExecuteSqlRawAsync("DROP INDEX \"IX_users_ExternalIssuer_ExternalSubject\"; ALTER TABLE users DROP COLUMN \"ExternalSubject\"; ALTER TABLE users DROP COLUMN \"ExternalIssuer\"; DROP TABLE sessions;");
        }

        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        await accounts.InitializeAsync(CancellationToken.None);
        Assert.Equal("alice", (await accounts.VerifyPasswordAsync("alice", "correct horse", CancellationToken.None))?.Name);
        await accounts.CreateUserAsync("bob", "battery staple", isAdmin: false, group: null, CancellationToken.None);
        Assert.Equal(2, (await accounts.ListUsersAsync(CancellationToken.None)).Count);

        await using var db = new HubDbContext(options);
        Assert.Equal([DatabaseMigrations.InitialMigration, "20261201000000_ExternalLogins", "20261205000000_Sessions"], await db.Database.GetAppliedMigrationsAsync());
    }

    [Fact]
    public async Task Migrations_MakeTheSameSqliteSchema_AsEnsureCreated()
    {
        var oldFile = Path.Combine(Path.GetDirectoryName(_db.File)!, "old.db");
        var oldHub = Path.Combine(Path.GetDirectoryName(_db.File)!, "old-hub.db");
        Directory.CreateDirectory(Path.GetDirectoryName(_db.File)!);
        await using (var old = new DsvmDbContext(new DbContextOptionsBuilder<DsvmDbContext>().UseSqlite($"Data Source={oldFile}").Options))
        {
            await old.Database.EnsureCreatedAsync();
            Assert.Empty(await WorkspaceStores.Sqlite(_db.File).ListAsync(null, CancellationToken.None));
            await using var migrated = new DsvmDbContext(_db.Options<DsvmDbContext>());
            Assert.Equal(await SchemaAsync(old), await SchemaAsync(migrated));
        }

        await using (var old = new HubDbContext(new DbContextOptionsBuilder<HubDbContext>().UseSqlite($"Data Source={oldHub}").Options))
        {
            await old.Database.EnsureCreatedAsync();
            await new Accounts(_db.Options<HubDbContext>(), new HubOptions(), TimeProvider.System).InitializeAsync(CancellationToken.None);
            await using var migrated = new HubDbContext(_db.Options<HubDbContext>());
            Assert.Equal(await SchemaAsync(old), await SchemaAsync(migrated));
        }
    }

    /// <summary>
    /// Columns (name, type, nullability, key) and index definitions: what the schema means, not the text of its CREATE
    /// TABLE (a migration that adds a column leaves SQLite's stored CREATE TABLE text formatted differently).
    /// </summary>
    private static Task<List<string>> SchemaAsync(DbContext db) =>
        db.Database.SqlQueryRaw<string>(
                "SELECT m.name || '.' || p.name || ' ' || p.type || ' notnull=' || p.\"notnull\" || ' pk=' || p.pk AS \"Value\" " +
                "FROM sqlite_master m JOIN pragma_table_info(m.name) p WHERE m.type = 'table' AND m.name NOT LIKE '%EFMigrations%' " +
                "UNION ALL SELECT sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL AND name NOT LIKE '%EFMigrations%' ORDER BY 1")
            .ToListAsync();
}
