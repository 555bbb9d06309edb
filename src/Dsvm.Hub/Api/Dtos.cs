using Dsvm.Core.Workspaces;
using Dsvm.Hub.Data;
using Dsvm.Hub.Services;

namespace Dsvm.Hub.Api;

/// <summary>A workspace as the API shows it: never its server token.</summary>
public sealed record WorkspaceDto(
    string Owner, string Name, string Environment, string Size, WorkspaceState State, string Url, bool Gpu, bool CpuFallback,
    DateTimeOffset CreatedAt, DateTimeOffset? StartedAt, string? LastError, string Backend)
{
    /// <summary>The workspace with its URL: <c>/user/OWNER/NAME/lab</c> under the hub, or on its own host (per-workspace origins).</summary>
    public static WorkspaceDto From(Workspace w, string url) => new(w.Owner, w.Name, w.Environment, w.Size, w.State, url,
        w.GpuEnabled, w.CpuFallback, w.CreatedAt, w.StartedAt, w.LastError, w.Backend);
}

public sealed record UserDto(string Name, bool Admin, DateTimeOffset CreatedAt, Quota Quota, string? Group)
{
    public static UserDto From(HubUser u) => new(u.Name, u.IsAdmin, u.CreatedAt, u.Quota, u.Group);
}

/// <summary>A home as admins see it: whose it is (its owner's current name, or the last one known once orphaned) and which workspace uses it.</summary>
public sealed record HomeDto(
    string Id, string? Owner, string OwnerId, string Name, string Backend, string Volume, bool Orphaned, string? UsedBy,
    DateTimeOffset CreatedAt, DateTimeOffset? OrphanedAt)
{
    public static HomeDto From(Home h, string? owner, string? usedBy) =>
        new(h.Id, owner ?? h.Owner, h.OwnerId, h.Name, h.Backend, h.Volume, h.OrphanedAt is not null, usedBy, h.CreatedAt, h.OrphanedAt);
}

/// <summary>Reassign a home to <see cref="User"/>, attached to their workspace <see cref="Workspace"/> (default: the home's name).</summary>
public sealed record ReassignHomeRequest(string? User, string? Workspace);

// Request fields are nullable as JSON can leave them out: the endpoints check them (Fields) and answer 400 naming them.
public sealed record LoginRequest(string? Name, string? Password);

public sealed record CreateUserRequest(string? Name, string? Password, bool Admin = false);

/// <summary>A new token; <see cref="Password"/> is the caller's current password, needed from a browser session.</summary>
public sealed record CreateTokenRequest(string? Name, IReadOnlyList<string?>? Scopes, long? ExpiresInDays, string? Password = null);

public sealed record CreatedToken(string Token, ApiTokenInfo Info);

public sealed record StartWorkspaceRequest(string? Name, string? Environment, string? Size);

public sealed record ResizeRequest(string? Size);

/// <summary>A new password; <see cref="CurrentPassword"/> is needed whenever the account has a password.</summary>
public sealed record PasswordRequest(string? Password, string? CurrentPassword = null);

public sealed record CreateClassRequest(string? Name, string? Environment, string? Size, long? Count, bool Prestart = true, string? Prefix = null);

public sealed record CreatedClass(string Class, IReadOnlyList<ClassCredential> Users);

public sealed record ExecRequest(IReadOnlyList<string?>? Command, long? TimeoutSeconds);

public sealed record ExecResult(int ExitCode, string Stdout, string Stderr, bool Truncated, bool TimedOut)
{
    public static ExecResult From(WorkspaceExecResult r) => new(r.ExitCode, r.Stdout, r.Stderr, r.Truncated, r.TimedOut);
}
