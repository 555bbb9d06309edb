using Dsvm.Core.Workspaces;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Diagnostics;

namespace Dsvm.Data;

/// <summary>Row of the workspaces table.</summary>
public sealed class WorkspaceEntity
{
    public string Id { get; set; } = "";
    public string Name { get; set; } = "";
    public string Owner { get; set; } = "";
    public string Environment { get; set; } = "";
    public string Image { get; set; } = "";
    public string Size { get; set; } = "";
    public string Backend { get; set; } = "";
    public string HomeVolume { get; set; } = "";
    public string Token { get; set; } = "";
    public WorkspaceState State { get; set; }
    public string? ContainerId { get; set; }
    public string? Endpoint { get; set; }
    public bool GpuEnabled { get; set; }
    public bool CpuFallback { get; set; }
    public string? LastError { get; set; }
    public DateTimeOffset CreatedAt { get; set; }
    public DateTimeOffset? StartedAt { get; set; }
    public DateTimeOffset UpdatedAt { get; set; }
    public string BackendState { get; set; } = "{}";

    /// <summary>Optimistic concurrency: every update compares and increments it (see <see cref="EfWorkspaceStore.SaveAsync"/>).</summary>
    public long Version { get; set; }
    public string OwnerId { get; set; } = "";
    public string HomeId { get; set; } = "";
}

/// <summary>Row of the homes table: a home belongs to an owner ID and attaches to one of their workspace names.</summary>
public sealed class HomeEntity
{
    public string Id { get; set; } = "";
    public string OwnerId { get; set; } = "";
    public string Owner { get; set; } = "";
    public string Name { get; set; } = "";
    public string Backend { get; set; } = "";
    public string Volume { get; set; } = "";
    public DateTimeOffset CreatedAt { get; set; }
    public DateTimeOffset? OrphanedAt { get; set; }
}

public sealed class DsvmDbContext(DbContextOptions<DsvmDbContext> options) : DbContext(options)
{
    public DbSet<WorkspaceEntity> Workspaces => Set<WorkspaceEntity>();
    public DbSet<HomeEntity> Homes => Set<HomeEntity>();

    protected override void OnConfiguring(DbContextOptionsBuilder optionsBuilder) => IgnoreMissingSnapshot(optionsBuilder);

    /// <summary>
    /// The migrations are hand-written and provider-neutral, without a model snapshot; EF would otherwise refuse to
    /// migrate, taking the missing snapshot for pending model changes.
    /// </summary>
    public static void IgnoreMissingSnapshot(DbContextOptionsBuilder optionsBuilder) =>
        optionsBuilder.ConfigureWarnings(w => w.Ignore(RelationalEventId.PendingModelChangesWarning));

    protected override void OnModelCreating(ModelBuilder modelBuilder)
    {
        var w = modelBuilder.Entity<WorkspaceEntity>();
        w.ToTable("workspaces");
        w.HasKey(x => x.Id);
        w.HasIndex(x => new { x.Owner, x.Name }).IsUnique();
        w.Property(x => x.State).HasConversion<string>();
        w.Property(x => x.Version).IsConcurrencyToken();
        // SQLite cannot order DateTimeOffset; store UTC ticks-compatible strings consistently.
        w.Property(x => x.CreatedAt).HasConversion(v => v.UtcDateTime, v => new DateTimeOffset(DateTime.SpecifyKind(v, DateTimeKind.Utc)));
        w.Property(x => x.UpdatedAt).HasConversion(v => v.UtcDateTime, v => new DateTimeOffset(DateTime.SpecifyKind(v, DateTimeKind.Utc)));
        var h = modelBuilder.Entity<HomeEntity>();
        h.ToTable("homes");
        h.HasKey(x => x.Id);
        h.HasIndex(x => new { x.OwnerId, x.Name });
        h.Property(x => x.CreatedAt).HasConversion(v => v.UtcDateTime, v => new DateTimeOffset(DateTime.SpecifyKind(v, DateTimeKind.Utc)));
        h.Property(x => x.OrphanedAt).HasConversion(
            v => v.HasValue ? v.Value.UtcDateTime : (DateTime?)null,
            v => v.HasValue ? new DateTimeOffset(DateTime.SpecifyKind(v.Value, DateTimeKind.Utc)) : null);
    }
}
