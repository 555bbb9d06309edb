using Dsvm.Data;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Infrastructure;

namespace Dsvm.Hub.Data;

public sealed class UserEntity
{
    public string Id { get; set; } = "";
    public string Name { get; set; } = "";
    public string PasswordHash { get; set; } = "";
    public bool IsAdmin { get; set; }
    public DateTimeOffset CreatedAt { get; set; }
    public int? MaxWorkspaces { get; set; }
    public double? MaxVcpus { get; set; }
    public int? MaxGpus { get; set; }

    /// <summary>The class or hackathon that created this user, if any.</summary>
    public string? Group { get; set; }

    /// <summary>The OpenID Connect identity (issuer and subject) this user logs in as, if any.</summary>
    public string? ExternalIssuer { get; set; }

    public string? ExternalSubject { get; set; }
}

public sealed class ApiTokenEntity
{
    public string Id { get; set; } = "";
    public string UserId { get; set; } = "";
    public string Name { get; set; } = "";

    /// <summary>sha256 of the secret; the secret itself is shown once and never stored.</summary>
    public string Hash { get; set; } = "";
    public string Scopes { get; set; } = "";
    public DateTimeOffset CreatedAt { get; set; }
    public DateTimeOffset ExpiresAt { get; set; }
    public DateTimeOffset? LastUsedAt { get; set; }
}

/// <summary>
/// A browser session: the session cookie names it, and it is valid only while this record exists (logout deletes it,
/// a password change or deleting the user deletes all of theirs).
/// </summary>
public sealed class SessionEntity
{
    public string Id { get; set; } = "";
    public string UserId { get; set; } = "";
    public DateTimeOffset CreatedAt { get; set; }

    /// <summary>The most a session lives, however active (the cookie itself expires sooner when unused).</summary>
    public DateTimeOffset ExpiresAt { get; set; }
}

/// <summary>The hub's accounts: users and API tokens (workspaces live in the workspace store).</summary>
public sealed class HubDbContext(DbContextOptions<HubDbContext> options) : DbContext(options)
{
    public DbSet<UserEntity> Users => Set<UserEntity>();
    public DbSet<ApiTokenEntity> Tokens => Set<ApiTokenEntity>();
    public DbSet<SessionEntity> Sessions => Set<SessionEntity>();

    /// <summary>
    /// This context's migrations history. Its own table, because with PostgreSQL the workspace store and the accounts
    /// share one database, and both contexts' first migration has the same id.
    /// </summary>
    public const string HistoryTable = "__EFMigrationsHistory_hub";

    protected override void OnConfiguring(DbContextOptionsBuilder optionsBuilder)
    {
        DsvmDbContext.IgnoreMissingSnapshot(optionsBuilder);
        var relational = optionsBuilder.Options.Extensions.OfType<RelationalOptionsExtension>().FirstOrDefault();
        if (relational is not null && relational.MigrationsHistoryTableName is null)
        {
            ((IDbContextOptionsBuilderInfrastructure)optionsBuilder).AddOrUpdateExtension(relational.WithMigrationsHistoryTableName(HistoryTable));
        }
    }

    protected override void OnModelCreating(ModelBuilder modelBuilder)
    {
        var u = modelBuilder.Entity<UserEntity>();
        u.ToTable("users");
        u.HasKey(x => x.Id);
        u.HasIndex(x => x.Name).IsUnique();
        u.HasIndex(x => new { x.ExternalIssuer, x.ExternalSubject }).IsUnique();
        u.Property(x => x.CreatedAt).HasConversion(v => v.UtcDateTime, v => new DateTimeOffset(DateTime.SpecifyKind(v, DateTimeKind.Utc)));
        var t = modelBuilder.Entity<ApiTokenEntity>();
        t.ToTable("api_tokens");
        t.HasKey(x => x.Id);
        t.HasIndex(x => x.Hash).IsUnique();
        t.HasIndex(x => x.UserId);
        t.Property(x => x.CreatedAt).HasConversion(v => v.UtcDateTime, v => new DateTimeOffset(DateTime.SpecifyKind(v, DateTimeKind.Utc)));
        t.Property(x => x.ExpiresAt).HasConversion(v => v.UtcDateTime, v => new DateTimeOffset(DateTime.SpecifyKind(v, DateTimeKind.Utc)));
        var session = modelBuilder.Entity<SessionEntity>();
        session.ToTable("sessions");
        session.HasKey(x => x.Id);
        session.HasIndex(x => x.UserId);
        session.Property(x => x.CreatedAt).HasConversion(v => v.UtcDateTime, v => new DateTimeOffset(DateTime.SpecifyKind(v, DateTimeKind.Utc)));
        session.Property(x => x.ExpiresAt).HasConversion(v => v.UtcDateTime, v => new DateTimeOffset(DateTime.SpecifyKind(v, DateTimeKind.Utc)));
    }
}
