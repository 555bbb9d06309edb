using Dsvm.Core.Workspaces;
using Microsoft.EntityFrameworkCore;

namespace Dsvm.Data;

/// <summary>
/// Workspace records in any EF Core relational database (SQLite by default, PostgreSQL by configuration). The schema
/// is brought up to date by migrations when the store is made (SQLite's in the background, before its first operation:
/// <see cref="SqliteWorkspaceStore"/>); see <see cref="WorkspaceStores"/> for the factories.
/// </summary>
public class EfWorkspaceStore : IWorkspaceStore
{
    /// <summary>A table that databases made before migrations already have.</summary>
    public const string ProbeTable = "workspaces";

    private readonly Lazy<Task<DbContextOptions<DsvmDbContext>>> _ready;

    /// <summary>Brings the schema up to date now; a failure throws here.</summary>
    public EfWorkspaceStore(DbContextOptions<DsvmDbContext> options)
        : this(new Lazy<Task<DbContextOptions<DsvmDbContext>>>(Task.FromResult(Migrated(options))))
    {
    }

    /// <summary>
    /// A store whose database may still be opening (EF Core's model and the migrations check take most of a second in
    /// a fresh process): every operation waits for <paramref name="ready"/>, and a failure there is the operation's.
    /// </summary>
    protected EfWorkspaceStore(Lazy<Task<DbContextOptions<DsvmDbContext>>> ready) => _ready = ready;

    private static DbContextOptions<DsvmDbContext> Migrated(DbContextOptions<DsvmDbContext> options)
    {
        using var db = new DsvmDbContext(options);
        DatabaseMigrations.Migrate(db, ProbeTable);
        if (db.Database.IsSqlite())
        {
            // WAL and a busy timeout let several dsvm processes share the file.
            db.Database.ExecuteSqlRaw("PRAGMA journal_mode=WAL;");
        }

        return options;
    }

    private async ValueTask<DsvmDbContext> OpenAsync() => new(await _ready.Value.ConfigureAwait(false));

    public virtual async Task<Workspace?> FindAsync(string owner, string name, CancellationToken ct)
    {
        await using var db = await OpenAsync();
        var e = await db.Workspaces.AsNoTracking().FirstOrDefaultAsync(w => w.Owner == owner && w.Name == name, ct);
        return e is null ? null : ToModel(e);
    }

    public virtual async Task<IReadOnlyList<Workspace>> ListAsync(string? owner, CancellationToken ct)
    {
        await using var db = await OpenAsync();
        var q = db.Workspaces.AsNoTracking();
        if (owner is not null)
        {
            q = q.Where(w => w.Owner == owner);
        }

        return (await q.ToListAsync(ct)).Select(ToModel).OrderBy(w => w.Owner, StringComparer.Ordinal).ThenBy(w => w.Name, StringComparer.Ordinal).ToList();
    }

    /// <summary>
    /// Version 0 inserts (a record with this id or owner/name exists already: stale); any other version updates the row
    /// only where its stored version still matches (<c>UPDATE … WHERE "Version" = @v</c>), so a reader holding an old
    /// copy can neither overwrite newer state nor re-insert a deleted record.
    /// </summary>
    public virtual async Task<Workspace> SaveAsync(Workspace workspace, CancellationToken ct)
    {
        await using var db = await OpenAsync();
        WorkspaceEntity e;
        if (workspace.Version == 0)
        {
            e = new WorkspaceEntity { Id = workspace.Id, Version = 1 };
            db.Workspaces.Add(e);
        }
        else
        {
            e = await db.Workspaces.FirstOrDefaultAsync(w => w.Id == workspace.Id, ct)
                ?? throw new StaleWorkspaceException($"workspace '{workspace.Name}' was deleted meanwhile");
            if (e.Version != workspace.Version)
            {
                throw new StaleWorkspaceException($"workspace '{workspace.Name}' was changed meanwhile (version {e.Version}, not {workspace.Version}); try again");
            }

            e.Version = workspace.Version + 1;
        }

        e.Name = workspace.Name;
        e.Owner = workspace.Owner;
        e.Environment = workspace.Environment;
        e.Image = workspace.Image;
        e.Size = workspace.Size;
        e.Backend = workspace.Backend;
        e.HomeVolume = workspace.HomeVolume;
        e.Token = workspace.Token;
        e.State = workspace.State;
        e.ContainerId = workspace.ContainerId;
        e.Endpoint = workspace.Endpoint;
        e.GpuEnabled = workspace.GpuEnabled;
        e.CpuFallback = workspace.CpuFallback;
        e.LastError = workspace.LastError;
        e.CreatedAt = workspace.CreatedAt;
        // PostgreSQL keeps instants only (timestamptz takes offset 0); SQLite keeps the text. Both read back the same instant.
        e.StartedAt = workspace.StartedAt?.ToUniversalTime();
        e.UpdatedAt = workspace.UpdatedAt;
        e.BackendState = workspace.BackendState;
        e.OwnerId = workspace.OwnerId;
        e.HomeId = workspace.HomeId;
        try
        {
            await db.SaveChangesAsync(ct);
        }
        catch (DbUpdateConcurrencyException)
        {
            throw new StaleWorkspaceException($"workspace '{workspace.Name}' was changed or deleted meanwhile; try again");
        }
        catch (DbUpdateException) when (workspace.Version == 0)
        {
            if (await ExistsAsync(workspace, ct))
            {
                throw new StaleWorkspaceException($"workspace '{workspace.Owner}/{workspace.Name}' exists already");
            }

            throw;
        }

        return workspace with { Version = e.Version };
    }

    private async Task<bool> ExistsAsync(Workspace workspace, CancellationToken ct)
    {
        await using var db = await OpenAsync();
        return await db.Workspaces.AnyAsync(w => w.Id == workspace.Id || (w.Owner == workspace.Owner && w.Name == workspace.Name), ct);
    }

    /// <summary>Deletes the row only at the version read (<c>DELETE … WHERE "Version" = @v</c>); a row already gone is no error.</summary>
    public virtual async Task DeleteAsync(Workspace workspace, CancellationToken ct)
    {
        await using var db = await OpenAsync();
        var deleted = await db.Workspaces.Where(w => w.Id == workspace.Id && w.Version == workspace.Version).ExecuteDeleteAsync(ct);
        if (deleted == 0 && await db.Workspaces.AnyAsync(w => w.Id == workspace.Id, ct))
        {
            throw new StaleWorkspaceException($"workspace '{workspace.Name}' was changed meanwhile; it was not deleted, try again");
        }
    }

    private static Workspace ToModel(WorkspaceEntity e) => new()
    {
        Id = e.Id,
        Name = e.Name,
        Owner = e.Owner,
        Environment = e.Environment,
        Image = e.Image,
        Size = e.Size,
        Backend = e.Backend,
        HomeVolume = e.HomeVolume,
        Token = e.Token,
        State = e.State,
        ContainerId = e.ContainerId,
        Endpoint = e.Endpoint,
        GpuEnabled = e.GpuEnabled,
        CpuFallback = e.CpuFallback,
        LastError = e.LastError,
        CreatedAt = e.CreatedAt,
        StartedAt = e.StartedAt,
        UpdatedAt = e.UpdatedAt,
        BackendState = e.BackendState,
        Version = e.Version,
        OwnerId = e.OwnerId,
        HomeId = e.HomeId,
    };

    public async Task<Home?> FindHomeAsync(string ownerId, string name, CancellationToken ct)
    {
        await using var db = await OpenAsync();
        var e = await db.Homes.AsNoTracking().Where(h => h.OwnerId == ownerId && h.Name == name && h.OrphanedAt == null)
            .OrderBy(h => h.Id).FirstOrDefaultAsync(ct);
        return e is null ? null : ToModel(e);
    }

    public async Task<Home?> GetHomeAsync(string homeId, CancellationToken ct)
    {
        await using var db = await OpenAsync();
        var e = await db.Homes.AsNoTracking().FirstOrDefaultAsync(h => h.Id == homeId, ct);
        return e is null ? null : ToModel(e);
    }

    public async Task<IReadOnlyList<Home>> ListHomesAsync(string? ownerId, CancellationToken ct)
    {
        await using var db = await OpenAsync();
        var q = db.Homes.AsNoTracking();
        if (ownerId is not null)
        {
            q = q.Where(h => h.OwnerId == ownerId);
        }

        return (await q.ToListAsync(ct)).Select(ToModel).OrderBy(h => h.Owner, StringComparer.Ordinal).ThenBy(h => h.Name, StringComparer.Ordinal)
            .ThenBy(h => h.Id, StringComparer.Ordinal).ToList();
    }

    public async Task SaveHomeAsync(Home home, CancellationToken ct)
    {
        await using var db = await OpenAsync();
        var e = await db.Homes.FirstOrDefaultAsync(h => h.Id == home.Id, ct);
        if (e is null)
        {
            e = new HomeEntity { Id = home.Id };
            db.Homes.Add(e);
        }

        e.OwnerId = home.OwnerId;
        e.Owner = home.Owner;
        e.Name = home.Name;
        e.Backend = home.Backend;
        e.Volume = home.Volume;
        e.CreatedAt = home.CreatedAt;
        e.OrphanedAt = home.OrphanedAt;
        await db.SaveChangesAsync(ct);
    }

    public async Task DeleteHomeAsync(string homeId, CancellationToken ct)
    {
        await using var db = await OpenAsync();
        await db.Homes.Where(h => h.Id == homeId).ExecuteDeleteAsync(ct);
    }

    private static Home ToModel(HomeEntity e) => new()
    {
        Id = e.Id,
        OwnerId = e.OwnerId,
        Owner = e.Owner,
        Name = e.Name,
        Backend = e.Backend,
        Volume = e.Volume,
        CreatedAt = e.CreatedAt,
        OrphanedAt = e.OrphanedAt,
    };
}
