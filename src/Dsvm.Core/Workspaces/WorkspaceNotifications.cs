namespace Dsvm.Core.Workspaces;

/// <summary>
/// One change to a workspace, as <see cref="WorkspaceNotifications"/> publishes it: the state it is in and a line for
/// people. <see cref="Record"/> is the record as written when the change is a write (null for a message about the
/// workspace, such as a start's progress, and for a deletion).
/// </summary>
public sealed record WorkspaceChange(string Owner, string Name, WorkspaceState State, string Message, DateTimeOffset At)
{
    public Workspace? Record { get; init; }

    /// <summary>The record was deleted (<see cref="State"/> is then <see cref="WorkspaceState.Stopped"/>).</summary>
    public bool Deleted { get; init; }
}

/// <summary>
/// Where the workspace manager publishes every record it writes or deletes and each step of a start, in the style of
/// Aspire's <c>ResourceNotificationService</c>: the hub's routes and its event stream subscribe here instead of
/// tracking states of their own. Subscribers run synchronously on the publishing thread, in the order they
/// subscribed, while the manager still holds the workspace's lock, so they see one workspace's changes in the order
/// they were written; they must be quick and must not throw (one that has slow work hands it to a queue of its own).
/// Changes made by other processes (a CLI on the same state file, another hub) are not published here: they are read
/// from the store (the hub's reconcile loop).
/// </summary>
public sealed class WorkspaceNotifications(TimeProvider time)
{
    private readonly Lock _gate = new();
    private Action<WorkspaceChange>[] _subscribers = [];

    /// <summary>Calls <paramref name="onChange"/> for every change published from now until the handle is disposed.</summary>
    public IDisposable Subscribe(Action<WorkspaceChange> onChange)
    {
        ArgumentNullException.ThrowIfNull(onChange);
        lock (_gate)
        {
            _subscribers = [.. _subscribers, onChange];
        }

        return new Subscription(this, onChange);
    }

    /// <summary>A record as it was just written.</summary>
    public void Written(Workspace record, string message) =>
        Publish(new WorkspaceChange(record.Owner, record.Name, record.State, message, time.GetUtcNow()) { Record = record });

    /// <summary>A record that was just deleted (its last state before).</summary>
    public void Deleted(Workspace last, string message) =>
        Publish(new WorkspaceChange(last.Owner, last.Name, WorkspaceState.Stopped, message, time.GetUtcNow()) { Deleted = true });

    /// <summary>A line about a workspace that changes no record (a start's progress, a failure before any write).</summary>
    public void Message(string owner, string name, WorkspaceState state, string message) =>
        Publish(new WorkspaceChange(owner, name, state, message, time.GetUtcNow()));

    private void Publish(WorkspaceChange change)
    {
        // A copy-on-write array: publishing takes no lock, a subscriber that subscribes meanwhile sees the next change.
        foreach (var subscriber in Volatile.Read(ref _subscribers))
        {
            subscriber(change);
        }
    }

    private sealed class Subscription(WorkspaceNotifications owner, Action<WorkspaceChange> onChange) : IDisposable
    {
        public void Dispose()
        {
            lock (owner._gate)
            {
                owner._subscribers = [.. owner._subscribers.Where(s => s != onChange)];
            }
        }
    }
}
