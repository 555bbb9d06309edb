using Dsvm.Core.Specs;

namespace Dsvm.Core;

/// <summary>Base of every error OpenDSVM reports to a user: the message is the one line they read.</summary>
public class DsvmException : Exception
{
    public DsvmException(string message)
        : base(message) { }

    public DsvmException(string message, Exception inner)
        : base(message, inner) { }

    /// <summary>Short, stable name of the error kind; the CLI maps it to an exit code.</summary>
    public virtual string Kind => "error";
}

/// <summary>The environment spec (or another input file) is invalid; every problem is listed.</summary>
public sealed class SpecValidationException : DsvmException
{
    public SpecValidationException(IReadOnlyList<SpecError> errors)
        : base(FormatMessage(errors)) => Errors = errors;

    public IReadOnlyList<SpecError> Errors { get; }

    public override string Kind => "invalid-spec";

    private static string FormatMessage(IReadOnlyList<SpecError> errors) =>
        errors.Count == 1
            ? errors[0].ToString()
            : $"{errors.Count} problems:{Environment.NewLine}" + string.Join(Environment.NewLine, errors.Take(MaxListed).Select(e => "  " + e))
                + (errors.Count > MaxListed ? $"{Environment.NewLine}  … and {errors.Count - MaxListed} more" : "");

    /// <summary>The problems the message lists (all stay in <see cref="Errors"/>).</summary>
    public const int MaxListed = 50;
}

/// <summary>Resolving packages to a lock failed, or a lock cannot be honoured.</summary>
public sealed class LockException(string message) : DsvmException(message)
{
    public override string Kind => "lock";
}

/// <summary>An image build failed; <see cref="LogPath"/> keeps the full log.</summary>
public sealed class BuildException(string message, string? logPath = null) : DsvmException(message)
{
    public string? LogPath { get; } = logPath;

    public override string Kind => "build";
}

/// <summary>In-image checks failed.</summary>
public sealed class ChecksFailedException(string message) : DsvmException(message)
{
    public override string Kind => "checks";
}

/// <summary>A required external tool or engine is missing or unreachable.</summary>
public sealed class EnvironmentNotReadyException(string message) : DsvmException(message)
{
    public override string Kind => "not-ready";
}

/// <summary>Something named by the user does not exist.</summary>
public sealed class NotFoundException(string message) : DsvmException(message)
{
    public override string Kind => "not-found";
}

/// <summary>The command line or request is wrong (bad name, bad combination of options).</summary>
public sealed class UsageException(string message) : DsvmException(message)
{
    public override string Kind => "usage";
}

/// <summary>The operation conflicts with the current state (already exists, busy).</summary>
public sealed class ConflictException(string message) : DsvmException(message)
{
    public override string Kind => "conflict";
}

public enum WorkspaceFailure
{
    Timeout,
    Image,
    Capacity,
    Backend,
    Gpu,
}

/// <summary>A workspace did not start; <see cref="Reason"/> says why, the message says it for people.</summary>
public sealed class WorkspaceStartException(WorkspaceFailure reason, string message) : DsvmException(message)
{
    public WorkspaceFailure Reason { get; } = reason;

    public override string Kind => "workspace";
}

/// <summary>The caller may not do this (wrong owner, missing scope, quota reached).</summary>
public sealed class ForbiddenException(string message) : DsvmException(message)
{
    public override string Kind => "forbidden";
}

/// <summary>Too much at once: try again after <see cref="RetryAfter"/>.</summary>
public sealed class TooManyRequestsException(string message, TimeSpan retryAfter) : DsvmException(message)
{
    public TimeSpan RetryAfter { get; } = retryAfter;

    public override string Kind => "too-many-requests";
}
