using Dsvm.Core.Workspaces;
using Microsoft.EntityFrameworkCore;

namespace Dsvm.Data;

/// <summary>
/// Workspace records in any EF Core relational database (SQLite by default, PostgreSQL by configuration). The schema
/// is brought up to date by migrations when the store is made; see <see cref="WorkspaceStores"/> for the factories.
/// </summary>
public class EfWorkspaceStore : IWorkspaceStore
{
    /// <summary>A table that databases made before migrations already have.</summary>
    public const string ProbeTable = "workspaces";

    private readonly DbContextOptions<DsvmDbContext> _options;

    public EfWorkspaceStore(DbContextOptions<DsvmDbContext> options)
    {
        _options = options;
        using var db = new DsvmDbContext(_options);
        DatabaseMigrations.Migrate(db, ProbeTable);
        if (db.Database.IsSqlite())
        {
            // WAL and a busy timeout let several dsvm processes share the file.
            db.Database.ExecuteSqlRaw("PRAGMA journal_mode=WAL;");
        }
    }

    private DsvmDbContext Open() => new(_options);

    public async Task<Workspace?> FindAsync(string owner, string name, CancellationToken ct)
    {
        await using var db = Open();
        var e = await db.Workspaces.AsNoTracking().FirstOrDefaultAsync(w => w.Owner == owner && w.Name == name, ct);
        return e is null ? null : ToModel(e);
    }

    public async Task<IReadOnlyList<Workspace>> ListAsync(string? owner, CancellationToken ct)
    {
        await using var db = Open();
        var q = db.Workspaces.AsNoTracking();
        if (owner is not null)
        {
            q = q.Where(w => w.Owner == owner);
        }

        return (await q.ToListAsync(ct)).Select(ToModel).OrderBy(w => w.Owner, StringComparer.Ordinal).ThenBy(w => w.Name, StringComparer.Ordinal).ToList();
    }

    public async Task SaveAsync(Workspace workspace, CancellationToken ct)
    {
        await using var db = Open();
        var e = await db.Workspaces.FirstOrDefaultAsync(w => w.Id == workspace.Id, ct);
        if (e is null)
        {
            e = new WorkspaceEntity { Id = workspace.Id };
            db.Workspaces.Add(e);
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
        await db.SaveChangesAsync(ct);
    }

    public async Task DeleteAsync(string id, CancellationToken ct)
    {
        await using var db = Open();
        await db.Workspaces.Where(w => w.Id == id).ExecuteDeleteAsync(ct);
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
        OwnerId = e.OwnerId,
        HomeId = e.HomeId,
    };

    public async Task<Home?> FindHomeAsync(string ownerId, string name, CancellationToken ct)
    {
        await using var db = Open();
        var e = await db.Homes.AsNoTracking().Where(h => h.OwnerId == ownerId && h.Name == name && h.OrphanedAt == null)
            .OrderBy(h => h.Id).FirstOrDefaultAsync(ct);
        return e is null ? null : ToModel(e);
    }

    public async Task<Home?> GetHomeAsync(string homeId, CancellationToken ct)
    {
        await using var db = Open();
        var e = await db.Homes.AsNoTracking().FirstOrDefaultAsync(h => h.Id == homeId, ct);
        return e is null ? null : ToModel(e);
    }

    public async Task<IReadOnlyList<Home>> ListHomesAsync(string? ownerId, CancellationToken ct)
    {
        await using var db = Open();
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
        await using var db = Open();
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
        await using var db = Open();
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
