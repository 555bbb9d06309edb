using System.Collections.Concurrent;
using Dsvm.Core.Sizes;
using Dsvm.Core.Specs;
using Dsvm.Core.Workspaces;
using Dsvm.Testing;

namespace Dsvm.Core.Tests;

/// <summary>Issue 10, part 7: the manager publishes its state; nobody keeps a second copy of the state machine.</summary>
public sealed class WorkspaceNotificationsTests : IDisposable
{
    private readonly TempDir _dir = new();
    private readonly FakeBackend _backend = new();
    private readonly InMemoryWorkspaceStore _store = new();
    private readonly FakeProbe _probe = new() { ReadyAfter = 2 };
    private readonly WorkspaceNotifications _notifications = new(TimeProvider.System);
    private readonly ConcurrentQueue<WorkspaceChange> _seen = new();
    private readonly CancellationTokenSource _timeout = new(TimeSpan.FromSeconds(60));

    public WorkspaceNotificationsTests() => _notifications.Subscribe(_seen.Enqueue);

    public void Dispose()
    {
        _timeout.Dispose();
        _dir.Dispose();
    }

    private CancellationToken Ct => _timeout.Token;

    private WorkspaceManager Manager() =>
        new(_backend, _store, new SizeCatalog(SizeCatalog.Defaults), new FakeGpuDetector(), _probe,
            new DsvmPaths(Path.Combine(_dir.Path, "data"), Path.Combine(_dir.Path, "cache")), TimeProvider.System,
            new WorkspaceOptions { StartTimeout = TimeSpan.FromSeconds(30), PollInterval = TimeSpan.FromMilliseconds(5) }, _notifications);

    private static CreateWorkspaceRequest Request(string name = "proj") => new()
    {
        Name = name, Owner = "alice", OwnerId = "u-a11ce0000000", Environment = "minimal", Image = "dsvm/minimal:latest", GpuMode = GpuMode.None, Size = "small",
    };

    [Fact]
    public async Task Every_record_the_manager_writes_is_published_as_stored_in_the_order_written()
    {
        var manager = Manager();
        await manager.UpAsync(Request(), null, Ct);
        await manager.ResizeAsync("alice", "proj", "medium", GpuMode.None, null, Ct);
        await manager.StopAsync("alice", "proj", null, Ct);
        await manager.DeleteAsync("alice", "proj", deleteHome: false, null, Ct);

        // Each write of the store, in order, is one published change carrying exactly the stored copy (same version).
        var written = _seen.Where(c => c.Record is not null).Select(c => c.Record!).ToList();
        Assert.Equal(_store.History.Select(w => (w.Version, w.State, w.Size)), written.Select(w => (w.Version, w.State, w.Size)));
        Assert.Equal(
            [WorkspaceState.Pending, WorkspaceState.Starting, WorkspaceState.Starting, WorkspaceState.Running, // up
                WorkspaceState.Stopping, WorkspaceState.Stopped, WorkspaceState.Stopped, WorkspaceState.Starting, WorkspaceState.Starting, WorkspaceState.Running, // resize
                WorkspaceState.Stopping, WorkspaceState.Stopped], // stop
            written.Select(w => w.State));
        var last = _seen.Last();
        Assert.True(last.Deleted);
        Assert.Equal(("alice", "proj", "deleted; home kept"), (last.Owner, last.Name, last.Message));
        Assert.Equal("ready", _seen.Single(c => c.Record is { State: WorkspaceState.Running, Size: "small" }).Message);
    }

    [Fact]
    public async Task A_starts_steps_and_the_backends_own_progress_are_published_and_still_reach_the_caller()
    {
        var progress = new ListProgress();
        await Manager().UpAsync(Request(), progress, Ct);

        // The backend's line ("fake: starting") is published as a message about the workspace, and still reaches the caller.
        Assert.Contains(_seen, c => c is { Record: null, Deleted: false, State: WorkspaceState.Starting, Message: "fake: starting" });
        Assert.Contains("fake: starting", progress.Messages);
        Assert.Contains(_seen, c => c.Record is not null && c.Message.StartsWith("starting proj (small", StringComparison.Ordinal));
        Assert.Contains(_seen, c => c.Record is not null && c.Message == "waiting for Jupyter to answer");
    }

    [Fact]
    public async Task A_failed_start_is_published_with_the_error_the_record_keeps()
    {
        _backend.Mode = FakeStart.Fail;
        await Assert.ThrowsAsync<WorkspaceStartException>(() => Manager().UpAsync(Request(), null, Ct));

        var failed = Assert.Single(_seen, c => c.State == WorkspaceState.Failed);
        Assert.NotNull(failed.Record);
        Assert.Equal(failed.Record.LastError, failed.Message);
        Assert.Contains("is not in the local engine", failed.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_repair_by_reconciliation_is_published_with_what_the_engine_said()
    {
        var manager = Manager();
        var w = await manager.UpAsync(Request(), null, Ct);
        _backend.StopOutside(w.Id);
        _seen.Clear();

        await manager.ReconcileAsync(Ct);

        var change = Assert.Single(_seen);
        Assert.Equal(WorkspaceState.Stopped, change.State);
        Assert.StartsWith("running -> stopped, as the engine says: found stopped at", change.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_stop_with_a_reason_says_it_and_a_disposed_subscription_hears_nothing_more()
    {
        var manager = Manager();
        await manager.UpAsync(Request(), null, Ct);
        var late = new ConcurrentQueue<WorkspaceChange>();
        var subscription = _notifications.Subscribe(late.Enqueue);
        await manager.StopAsync("alice", "proj", null, Ct, reason: "idle for 1h02m");
        subscription.Dispose();
        await manager.DeleteAsync("alice", "proj", deleteHome: true, null, Ct);

        Assert.Equal(["stopping: idle for 1h02m", "stopped: idle for 1h02m; home kept"], late.Select(c => c.Message));
        Assert.Equal("deleted with its home", _seen.Last().Message);
    }
}
