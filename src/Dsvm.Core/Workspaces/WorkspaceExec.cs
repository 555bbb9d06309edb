using System.Buffers;

namespace Dsvm.Core.Workspaces;

/// <summary>A non-interactive command to run inside a running workspace, as the workspace's user.</summary>
public sealed record WorkspaceExecRequest
{
    /// <summary>The program and its arguments (no shell: pass <c>["sh", "-c", "…"]</c> for one).</summary>
    public required IReadOnlyList<string> Command { get; init; }

    /// <summary>The command is killed after this long (exit code 124, <see cref="WorkspaceExecResult.TimedOut"/>).</summary>
    public TimeSpan Timeout { get; init; } = TimeSpan.FromMinutes(1);

    /// <summary>Bytes kept of stdout and of stderr each; the rest is read and dropped (<see cref="WorkspaceExecResult.Truncated"/>).</summary>
    public int OutputLimitBytes { get; init; } = 1024 * 1024;
}

public sealed record WorkspaceExecResult(int ExitCode, string Stdout, string Stderr, bool Truncated, bool TimedOut);

/// <summary>
/// Optional capability of an <see cref="IWorkspaceBackend"/>: run a command inside a workspace's server (like
/// <c>docker exec</c>, as <see cref="WorkspaceUser"/>). Backends that cannot do it simply do not implement it.
/// </summary>
public interface IWorkspaceExec
{
    Task<WorkspaceExecResult> ExecAsync(WorkspaceHandle handle, WorkspaceExecRequest request, CancellationToken ct);
}

/// <summary>The backend cannot do this (for instance: exec on a backend without <see cref="IWorkspaceExec"/>).</summary>
public sealed class BackendNotSupportedException(string message) : DsvmException(message)
{
    public override string Kind => "not-supported";
}

/// <summary>Keeps the first N bytes of a stream's output and counts the rest.</summary>
public sealed class CappedOutput(int limit)
{
    private readonly ArrayBufferWriter<byte> _kept = new();

    public bool Truncated { get; private set; }

    public void Write(ReadOnlySpan<byte> data)
    {
        var room = Math.Max(0, limit - _kept.WrittenCount);
        if (data.Length > room)
        {
            Truncated = true;
        }

        _kept.Write(data[..Math.Min(room, data.Length)]);
    }

    public override string ToString() => System.Text.Encoding.UTF8.GetString(_kept.WrittenSpan);
}
