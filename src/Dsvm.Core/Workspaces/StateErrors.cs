namespace Dsvm.Core.Workspaces;

/// <summary>A versioned write lost a race: the record changed or was deleted since it was read.</summary>
public sealed class StaleWorkspaceException(string message) : DsvmException(message)
{
    public override string Kind => "conflict";
}

/// <summary>The state file (or database) cannot be used; the one-line message names it and what to do.</summary>
public sealed class StateFileException : DsvmException
{
    public StateFileException(string message)
        : base(message) { }

    public StateFileException(string message, Exception inner)
        : base(message, inner) { }

    public override string Kind => "state";
}
