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

public sealed record LoginRequest(string Name, string Password);

public sealed record CreateUserRequest(string Name, string Password, bool Admin = false);

public sealed record CreateTokenRequest(string Name, IReadOnlyList<string>? Scopes, int? ExpiresInDays);

public sealed record CreatedToken(string Token, ApiTokenInfo Info);

public sealed record StartWorkspaceRequest(string Name, string? Environment, string? Size);

public sealed record ResizeRequest(string Size);

public sealed record PasswordRequest(string Password);

public sealed record CreateClassRequest(string Name, string? Environment, string? Size, int Count, bool Prestart = true, string? Prefix = null);

public sealed record CreatedClass(string Class, IReadOnlyList<ClassCredential> Users);

public sealed record ExecRequest(IReadOnlyList<string>? Command, int? TimeoutSeconds);

public sealed record ExecResult(int ExitCode, string Stdout, string Stderr, bool Truncated, bool TimedOut)
{
    public static ExecResult From(WorkspaceExecResult r) => new(r.ExitCode, r.Stdout, r.Stderr, r.Truncated, r.TimedOut);
}
