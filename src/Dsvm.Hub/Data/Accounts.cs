using System.Security.Cryptography;
using System.Text;
using Dsvm.Core;
using Dsvm.Core.Workspaces;
using Dsvm.Data;
using Microsoft.AspNetCore.Identity;
using Microsoft.EntityFrameworkCore;

namespace Dsvm.Hub.Data;

/// <summary>API token scopes: read (look), workspaces (start/stop/resize/delete one's own), admin (everything).</summary>
public static class Scopes
{
    public const string Read = "read";
    public const string Workspaces = "workspaces";
    public const string Admin = "admin";

    public static readonly string[] All = [Read, Workspaces, Admin];
}

/// <summary>One quota field as an admin sets it: the hub's default, unlimited, or a limit.</summary>
public readonly record struct QuotaSetting(bool IsDefault, double? Limit)
{
    /// <summary>How "unlimited" is stored in the nullable quota columns (null there means the hub's default).</summary>
    public const int UnlimitedStored = -1;

    public static QuotaSetting Default => new(true, null);

    public static QuotaSetting Unlimited => new(false, null);

    public static QuotaSetting Of(double limit) => new(false, limit);

    /// <summary>The column value: null (default), -1 (unlimited) or the limit.</summary>
    public double? Store() => IsDefault ? null : Limit ?? UnlimitedStored;
}

/// <summary>A change to a user's quota; a null field is left as it is.</summary>
public sealed record QuotaChange(QuotaSetting? MaxWorkspaces, QuotaSetting? MaxVcpus, QuotaSetting? MaxGpus);

public sealed record HubUser(string Id, string Name, bool IsAdmin, DateTimeOffset CreatedAt, Quota Quota, string? Group);

public sealed record ApiTokenInfo(string Id, string Name, IReadOnlyList<string> Scopes, DateTimeOffset CreatedAt, DateTimeOffset ExpiresAt, DateTimeOffset? LastUsedAt);

/// <summary>Users (PBKDF2 password hashes) and API tokens (sha256 at rest, scoped, expiring).</summary>
public sealed class Accounts(DbContextOptions<HubDbContext> dbOptions, HubOptions options, TimeProvider time)
{
    private static readonly PasswordHasher<string> Hasher = new();

    public const string TokenPrefix = "dsvm_";

    private HubDbContext Open() => new(dbOptions);

    /// <summary>
    /// How long a validated token or session user is trusted without asking the database again: every proxied
    /// request is authenticated, and a database round trip per request would cap the proxy (measured: ~900 req/s).
    /// Changes made through this hub (revoke, delete, quota, password) clear the caches at once; another hub
    /// process sharing the database sees them within this time.
    /// </summary>
    public static readonly TimeSpan CacheLifetime = TimeSpan.FromSeconds(5);

    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, (HubUser User, IReadOnlyList<string> Scopes, DateTimeOffset ExpiresAt, DateTimeOffset CachedAt)> _tokens = new(StringComparer.Ordinal);
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, (HubUser? User, DateTimeOffset CachedAt)> _users = new(StringComparer.Ordinal);
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, (string? UserId, DateTimeOffset ExpiresAt, DateTimeOffset CachedAt)> _sessions = new(StringComparer.Ordinal);

    /// <summary>Live (unexpired) tokens one user may have.</summary>
    public const int MaxTokensPerUser = 100;

    /// <summary>Characters in a token's name.</summary>
    public const int MaxTokenNameLength = 100;

    /// <summary>The most a browser session lives, however active it is (its cookie expires after 12 h unused).</summary>
    public static readonly TimeSpan SessionMaxLifetime = TimeSpan.FromDays(7);

    private void Invalidate()
    {
        _tokens.Clear();
        _users.Clear();
        _sessions.Clear();
    }

    /// <summary>Records a new browser session of this user and returns its id (what the session cookie names).</summary>
    public async Task<string> CreateSessionAsync(HubUser user, CancellationToken ct)
    {
        var now = time.GetUtcNow();
        var e = new SessionEntity
        {
            Id = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(24)),
            UserId = user.Id,
            CreatedAt = now,
            ExpiresAt = now + SessionMaxLifetime,
        };
        await using var db = Open();
        // Expired sessions go when new ones come: the table holds live sessions only, more or less.
        await db.Sessions.Where(x => x.ExpiresAt < now).ExecuteDeleteAsync(ct);
        db.Sessions.Add(e);
        await db.SaveChangesAsync(ct);
        return e.Id;
    }

    /// <summary>Whether the session exists, belongs to this user and has not expired (cached like tokens are).</summary>
    public async Task<bool> IsSessionValidAsync(string sessionId, string userId, CancellationToken ct)
    {
        var now = time.GetUtcNow();
        if (!_sessions.TryGetValue(sessionId, out var hit) || now - hit.CachedAt >= CacheLifetime)
        {
            await using var db = Open();
            var e = await db.Sessions.AsNoTracking().FirstOrDefaultAsync(x => x.Id == sessionId, ct);
            hit = (e?.UserId, e?.ExpiresAt ?? DateTimeOffset.MinValue, now);
            _sessions[sessionId] = hit;
        }

        return hit.UserId == userId && now < hit.ExpiresAt;
    }

    /// <summary>
    /// The user a browser sign-in (the hub's session cookie, or a workspace host's cookie made from it) belongs to, while
    /// it holds: the user still exists with this id (deleting a user, or deleting and making it again under the same
    /// name, ends it) and, when the sign-in came from a hub session, that session lives (logout and a password change
    /// end it). Answered from the same short caches as tokens; changes made through this hub clear them at once.
    /// </summary>
    public async Task<HubUser?> SignedInUserAsync(string name, string userId, string? sessionId, CancellationToken ct)
    {
        var user = await FindUserCachedAsync(name, ct);
        if (user is null || user.Id != userId)
        {
            return null;
        }

        return sessionId is null || await IsSessionValidAsync(sessionId, user.Id, ct) ? user : null;
    }

    /// <summary>Ends one session (logout); unknown ids are ignored.</summary>
    public async Task EndSessionAsync(string sessionId, CancellationToken ct)
    {
        await using var db = Open();
        await db.Sessions.Where(x => x.Id == sessionId).ExecuteDeleteAsync(ct);
        Invalidate();
    }

    /// <summary>Checks a user's password without logging in (to confirm a sensitive change); false when the account has none.</summary>
    public async Task<bool> CheckPasswordAsync(string name, string password, CancellationToken ct) =>
        await VerifyPasswordAsync(name, password, ct) is not null;

    /// <summary>Whether the account has a password (users who only log in with OpenID Connect have none).</summary>
    public async Task<bool> HasPasswordAsync(string name, CancellationToken ct)
    {
        await using var db = Open();
        return await db.Users.AnyAsync(u => u.Name == name && u.PasswordHash != "", ct);
    }

    /// <summary>The user by name, from a short-lived cache: for authenticating every request.</summary>
    public async Task<HubUser?> FindUserCachedAsync(string name, CancellationToken ct)
    {
        var now = time.GetUtcNow();
        if (_users.TryGetValue(name, out var hit) && now - hit.CachedAt < CacheLifetime)
        {
            return hit.User;
        }

        var user = await FindUserAsync(name, ct);
        _users[name] = (user, now);
        return user;
    }

    public async Task InitializeAsync(CancellationToken ct)
    {
        await using var db = Open();
        await DatabaseMigrations.MigrateAsync(db, "users", ct);
        if (db.Database.IsSqlite())
        {
            await db.Database.ExecuteSqlRawAsync("PRAGMA journal_mode=WAL;", ct);
        }
    }

    /// <summary>Creates the first admin if there is no user yet. Returns the generated password (print it once), or null.</summary>
    public async Task<string?> EnsureAdminAsync(CancellationToken ct)
    {
        await using var db = Open();
        if (await db.Users.AnyAsync(ct))
        {
            return null;
        }

        var generated = string.IsNullOrEmpty(options.AdminPassword);
        var password = generated ? Convert.ToBase64String(RandomNumberGenerator.GetBytes(18)).Replace('+', 'x').Replace('/', 'y') : options.AdminPassword!;
        await CreateUserAsync(options.AdminName, password, isAdmin: true, group: null, ct);
        return generated ? password : null;
    }

    public async Task<HubUser> CreateUserAsync(string name, string password, bool isAdmin, string? group, CancellationToken ct)
    {
        WorkspaceNames.Validate(name, "user name");
        if (password.Length < 8)
        {
            throw new UsageException("passwords need at least 8 characters");
        }

        await using var db = Open();
        if (await db.Users.AnyAsync(u => u.Name == name, ct))
        {
            throw new ConflictException($"user '{name}' already exists");
        }

        var e = new UserEntity
        {
            Id = "u-" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(6)),
            Name = name,
            PasswordHash = Hasher.HashPassword(name, password),
            IsAdmin = isAdmin,
            CreatedAt = time.GetUtcNow(),
            Group = group,
        };
        db.Users.Add(e);
        await db.SaveChangesAsync(ct);
        Invalidate();
        return ToUser(e);
    }

    /// <summary>The user linked to an OpenID Connect identity, if any.</summary>
    public async Task<HubUser?> FindExternalAsync(string issuer, string subject, CancellationToken ct)
    {
        await using var db = Open();
        var e = await db.Users.AsNoTracking().FirstOrDefaultAsync(u => u.ExternalIssuer == issuer && u.ExternalSubject == subject, ct);
        return e is null ? null : ToUser(e);
    }

    /// <summary>Whether a user (by name) is linked to some identity.</summary>
    public async Task<bool> IsLinkedAsync(string name, CancellationToken ct)
    {
        await using var db = Open();
        return await db.Users.AnyAsync(u => u.Name == name && u.ExternalSubject != null, ct);
    }

    /// <summary>Creates a user who logs in through OpenID Connect: no password (one can be set later), linked to the identity.</summary>
    public async Task<HubUser> CreateExternalUserAsync(string name, string issuer, string subject, bool isAdmin, Quota? quota, CancellationToken ct)
    {
        WorkspaceNames.Validate(name, "user name");
        await using var db = Open();
        if (await db.Users.AnyAsync(u => u.Name == name, ct))
        {
            throw new ConflictException($"user '{name}' already exists");
        }

        var e = new UserEntity
        {
            Id = "u-" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(6)),
            Name = name,
            PasswordHash = "",
            IsAdmin = isAdmin,
            CreatedAt = time.GetUtcNow(),
            ExternalIssuer = issuer,
            ExternalSubject = subject,
        };
        if (quota is not null)
        {
            e.MaxWorkspaces = quota.MaxWorkspaces ?? QuotaSetting.UnlimitedStored;
            e.MaxVcpus = quota.MaxVcpus ?? QuotaSetting.UnlimitedStored;
            e.MaxGpus = quota.MaxGpus ?? QuotaSetting.UnlimitedStored;
        }

        db.Users.Add(e);
        await db.SaveChangesAsync(ct);
        Invalidate();
        return ToUser(e);
    }

    /// <summary>Links an existing user to an identity and, when <paramref name="isAdmin"/> is given, sets whether they are an admin.</summary>
    public async Task<HubUser> LinkExternalAsync(string name, string issuer, string subject, bool? isAdmin, CancellationToken ct)
    {
        await using var db = Open();
        var e = await db.Users.FirstOrDefaultAsync(u => u.Name == name, ct) ?? throw new NotFoundException($"no user '{name}'");
        var changed = e.ExternalIssuer != issuer || e.ExternalSubject != subject || (isAdmin is { } a && a != e.IsAdmin);
        e.ExternalIssuer = issuer;
        e.ExternalSubject = subject;
        e.IsAdmin = isAdmin ?? e.IsAdmin;
        if (changed)
        {
            await db.SaveChangesAsync(ct);
            Invalidate();
        }

        return ToUser(e);
    }

    public async Task<HubUser?> VerifyPasswordAsync(string name, string password, CancellationToken ct)
    {
        await using var db = Open();
        var e = await db.Users.FirstOrDefaultAsync(u => u.Name == name, ct);
        if (e is null || e.PasswordHash.Length == 0)
        {
            // Same work as a real check, so timing does not tell which names exist.
            Hasher.VerifyHashedPassword(name, DummyHash, password);
            return null;
        }

        var result = Hasher.VerifyHashedPassword(name, e.PasswordHash, password);
        if (result == PasswordVerificationResult.Failed)
        {
            return null;
        }

        if (result == PasswordVerificationResult.SuccessRehashNeeded)
        {
            e.PasswordHash = Hasher.HashPassword(name, password);
            await db.SaveChangesAsync(ct);
        }

        return ToUser(e);
    }

    private static readonly string DummyHash = Hasher.HashPassword("nobody", Guid.NewGuid().ToString());

    public Task SetPasswordAsync(string name, string password, CancellationToken ct) => SetPasswordAsync(name, password, null, ct);

    /// <summary>Sets a password and ends every session of the user but <paramref name="keepSession"/> (the one that changed it).</summary>
    public async Task SetPasswordAsync(string name, string password, string? keepSession, CancellationToken ct)
    {
        if (password.Length < 8)
        {
            throw new UsageException("passwords need at least 8 characters");
        }

        await using var db = Open();
        var e = await db.Users.FirstOrDefaultAsync(u => u.Name == name, ct) ?? throw new NotFoundException($"no user '{name}'");
        e.PasswordHash = Hasher.HashPassword(name, password);
        await db.SaveChangesAsync(ct);
        await db.Sessions.Where(x => x.UserId == e.Id && x.Id != keepSession).ExecuteDeleteAsync(ct);
        Invalidate();
    }

    public async Task<HubUser?> FindUserAsync(string name, CancellationToken ct)
    {
        await using var db = Open();
        var e = await db.Users.AsNoTracking().FirstOrDefaultAsync(u => u.Name == name, ct);
        return e is null ? null : ToUser(e);
    }

    public async Task<IReadOnlyList<HubUser>> ListUsersAsync(CancellationToken ct)
    {
        await using var db = Open();
        return (await db.Users.AsNoTracking().ToListAsync(ct)).Select(ToUser).OrderBy(u => u.Name, StringComparer.Ordinal).ToList();
    }

    /// <summary>The members of a class or hackathon: the users whose group is <paramref name="group"/>.</summary>
    public async Task<IReadOnlyList<HubUser>> ListUsersAsync(string group, CancellationToken ct)
    {
        await using var db = Open();
        return (await db.Users.AsNoTracking().Where(u => u.Group == group).ToListAsync(ct)).Select(ToUser).OrderBy(u => u.Name, StringComparer.Ordinal).ToList();
    }

    public async Task DeleteUserAsync(string name, CancellationToken ct)
    {
        await using var db = Open();
        var e = await db.Users.FirstOrDefaultAsync(u => u.Name == name, ct) ?? throw new NotFoundException($"no user '{name}'");
        db.Tokens.RemoveRange(db.Tokens.Where(t => t.UserId == e.Id));
        db.Sessions.RemoveRange(db.Sessions.Where(x => x.UserId == e.Id));
        db.Users.Remove(e);
        await db.SaveChangesAsync(ct);
        Invalidate();
    }

    /// <summary>Changes a user's quota: each field given is set (a limit, unlimited, or back to the hub's default).</summary>
    public async Task<HubUser> SetQuotaAsync(string name, QuotaChange change, CancellationToken ct)
    {
        await using var db = Open();
        var e = await db.Users.FirstOrDefaultAsync(u => u.Name == name, ct) ?? throw new NotFoundException($"no user '{name}'");
        if (change.MaxWorkspaces is { } ws)
        {
            e.MaxWorkspaces = ws.Store() is { } v ? (int)v : null;
        }

        if (change.MaxVcpus is { } cpu)
        {
            e.MaxVcpus = cpu.Store();
        }

        if (change.MaxGpus is { } gpu)
        {
            e.MaxGpus = gpu.Store() is { } v ? (int)v : null;
        }

        await db.SaveChangesAsync(ct);
        Invalidate();
        return ToUser(e);
    }

    /// <summary>Makes a token; the returned secret is shown once and only its hash is kept.</summary>
    public async Task<(string Secret, ApiTokenInfo Info)> CreateTokenAsync(HubUser user, string name, IReadOnlyList<string> scopes, TimeSpan? lifetime, CancellationToken ct)
    {
        if (string.IsNullOrWhiteSpace(name) || name.Length > MaxTokenNameLength || name.Any(char.IsControl))
        {
            throw new UsageException($"name: a token's name has 1 to {MaxTokenNameLength} characters and no control characters");
        }

        var unknown = scopes.Where(s => !Scopes.All.Contains(s)).ToList();
        if (unknown.Count > 0 || scopes.Count == 0)
        {
            throw new UsageException($"scopes must be some of: {string.Join(", ", Scopes.All)}" + (unknown.Count > 0 ? $" (unknown: {string.Join(", ", unknown)})" : ""));
        }

        if (scopes.Contains(Scopes.Admin) && !user.IsAdmin)
        {
            throw new ForbiddenException("only admins can make tokens with the admin scope");
        }

        var life = lifetime ?? options.DefaultTokenLifetime;
        if (life <= TimeSpan.Zero || life > TimeSpan.FromDays(366))
        {
            throw new UsageException("a token's lifetime must be between 1 second and 366 days");
        }

        var secret = TokenPrefix + Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)).TrimEnd('=').Replace('+', '-').Replace('/', '_');
        var now = time.GetUtcNow();
        var e = new ApiTokenEntity
        {
            Id = "t-" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(6)),
            UserId = user.Id,
            Name = name,
            Hash = HashToken(secret),
            Scopes = string.Join(' ', scopes.Distinct()),
            CreatedAt = now,
            ExpiresAt = now + life,
        };
        await using var db = Open();
        // Counted and added at once: the limit holds for concurrent creations too (SQLite serialises writers; on
        // PostgreSQL two racing creations may pass one over the limit, which the next creation then sees).
        await using var tx = await db.Database.BeginTransactionAsync(ct);
        if (await db.Tokens.CountAsync(t => t.UserId == user.Id && t.ExpiresAt > now, ct) >= MaxTokensPerUser)
        {
            throw new ConflictException($"a user has at most {MaxTokensPerUser} live tokens: revoke some first (DELETE /api/v1/tokens/ID)");
        }

        db.Tokens.Add(e);
        await db.SaveChangesAsync(ct);
        await tx.CommitAsync(ct);
        return (secret, ToInfo(e));
    }

    public async Task<(HubUser User, IReadOnlyList<string> Scopes)?> ValidateTokenAsync(string secret, CancellationToken ct)
    {
        if (!secret.StartsWith(TokenPrefix, StringComparison.Ordinal))
        {
            return null;
        }

        var hash = HashToken(secret);
        var now = time.GetUtcNow();
        if (_tokens.TryGetValue(hash, out var hit) && now - hit.CachedAt < CacheLifetime && now < hit.ExpiresAt)
        {
            return (hit.User, hit.Scopes);
        }

        await using var db = Open();
        var t = await db.Tokens.FirstOrDefaultAsync(x => x.Hash == hash, ct);
        if (t is null || t.ExpiresAt <= now)
        {
            return null;
        }

        var user = await db.Users.AsNoTracking().FirstOrDefaultAsync(u => u.Id == t.UserId, ct);
        if (user is null)
        {
            return null;
        }

        if (t.LastUsedAt is null || now - t.LastUsedAt > TimeSpan.FromMinutes(1))
        {
            t.LastUsedAt = now;
            await db.SaveChangesAsync(ct);
        }

        var scopes = t.Scopes.Split(' ', StringSplitOptions.RemoveEmptyEntries).Where(s => s != Scopes.Admin || user.IsAdmin).ToList();
        var result = ToUser(user);
        _tokens[hash] = (result, scopes, t.ExpiresAt, now);
        return (result, scopes);
    }

    public async Task<IReadOnlyList<ApiTokenInfo>> ListTokensAsync(HubUser user, CancellationToken ct)
    {
        await using var db = Open();
        return (await db.Tokens.AsNoTracking().Where(t => t.UserId == user.Id).ToListAsync(ct)).Select(ToInfo).OrderBy(t => t.CreatedAt).ToList();
    }

    public async Task RevokeTokenAsync(HubUser user, string id, CancellationToken ct)
    {
        await using var db = Open();
        var t = await db.Tokens.FirstOrDefaultAsync(x => x.Id == id && x.UserId == user.Id, ct) ?? throw new NotFoundException($"no token '{id}'");
        db.Tokens.Remove(t);
        await db.SaveChangesAsync(ct);
        Invalidate();
    }

    private static string HashToken(string secret) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(secret)));

    /// <summary>A stored quota column: null is the hub's default, a negative number unlimited (<see cref="QuotaSetting.UnlimitedStored"/>).</summary>
    private HubUser ToUser(UserEntity e) => new(e.Id, e.Name, e.IsAdmin, e.CreatedAt,
        new Quota
        {
            MaxWorkspaces = e.MaxWorkspaces switch { null => options.DefaultQuota.MaxWorkspaces, < 0 => null, var v => v },
            MaxVcpus = e.MaxVcpus switch { null => options.DefaultQuota.MaxVcpus, < 0 => null, var v => v },
            MaxGpus = e.MaxGpus switch { null => options.DefaultQuota.MaxGpus, < 0 => null, var v => v },
        }, e.Group);

    private static ApiTokenInfo ToInfo(ApiTokenEntity e) =>
        new(e.Id, e.Name, e.Scopes.Split(' ', StringSplitOptions.RemoveEmptyEntries), e.CreatedAt, e.ExpiresAt, e.LastUsedAt);
}
