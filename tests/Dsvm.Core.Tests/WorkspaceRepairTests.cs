using System.Text.Json;
using Dsvm.Core.Sizes;
using Dsvm.Core.Specs;
using Dsvm.Core.Workspaces;
using Dsvm.Testing;

namespace Dsvm.Core.Tests;

/// <summary>
/// The state machine under faults: readers racing writers (no ghosts, no stale overwrites), records left in a
/// transient state by a killed process, and an engine that goes away mid-operation.
/// </summary>
public sealed class WorkspaceRepairTests : IDisposable
{
    private const string Owner = "alice";
    private const string Name = "proj";

    private readonly TempDir _dir = new();
    private readonly FakeBackend _backend = new();
    private readonly InMemoryWorkspaceStore _store = new();
    private readonly FakeProbe _probe = new();
    private readonly CancellationTokenSource _testTimeout = new(TimeSpan.FromSeconds(120));

    private CancellationToken Ct => _testTimeout.Token;

    public void Dispose()
    {
        _testTimeout.Dispose();
        _dir.Dispose();
    }

    private WorkspaceManager Manager(TimeSpan? startTimeout = null) =>
        new(_backend, _store, new SizeCatalog(SizeCatalog.Defaults), new FakeGpuDetector(), _probe,
            new DsvmPaths(Path.Combine(_dir.Path, "data"), Path.Combine(_dir.Path, "cache")), TimeProvider.System,
            new WorkspaceOptions { StartTimeout = startTimeout ?? TimeSpan.FromSeconds(30), PollInterval = TimeSpan.FromMilliseconds(5) });

    private static CreateWorkspaceRequest Request(string name = Name) => new()
    {
        Name = name, Owner = Owner, OwnerId = WorkspaceIds.LocalOwnerId, Environment = "datascience", Image = "dsvm/datascience:latest", GpuMode = GpuMode.None, Size = "medium",
    };

    /// <summary>A record as a process killed at some step leaves it (written straight to the store).</summary>
    private async Task<Workspace> LeftBehindAsync(WorkspaceState state, DateTimeOffset updatedAt, string backendState = "{}") =>
        await _store.SaveAsync(new Workspace
        {
            Id = "ws-0123456789ab", Name = Name, Owner = Owner, Environment = "datascience", Image = "dsvm/datascience:latest", Size = "medium",
            Backend = "fake", HomeVolume = "dsvm-home-alice-proj", Token = "t0ken", State = state, CreatedAt = updatedAt, UpdatedAt = updatedAt,
            BackendState = backendState,
        }, Ct);

    // ---- readers never resurrect or overwrite ----

    [Fact]
    public async Task List_RacingADelete_DoesNotReinsertTheRecord()
    {
        var manager = Manager();
        var ws = await manager.UpAsync(Request(), null, Ct);
        _backend.StopOutside(ws.Id);
        // While ls asks the engine, another process deletes the workspace.
        _backend.OnStatus = async () =>
        {
            _backend.OnStatus = null;
            await _store.DeleteAsync(ws, Ct);
        };

        var list = await manager.ListAsync(Owner, Ct);

        Assert.Empty(list);
        Assert.Empty(_store.All);
    }

    [Fact]
    public async Task List_RacingAResize_DoesNotWriteAStaleCopy()
    {
        var manager = Manager();
        var ws = await manager.UpAsync(Request(), null, Ct);
        _backend.StopOutside(ws.Id);
        _backend.OnStatus = async () =>
        {
            _backend.OnStatus = null;
            var current = await _store.FindAsync(Owner, Name, Ct);
            await _store.SaveAsync(current! with { Size = "large", State = WorkspaceState.Stopped }, Ct);
        };

        await manager.ListAsync(Owner, Ct);

        var stored = Assert.Single(_store.All);
        Assert.Equal("large", stored.Size);
    }

    [Fact]
    public async Task List_WhileAnotherCommandHoldsTheLock_WritesNothing()
    {
        var manager = Manager();
        var ws = await manager.UpAsync(Request(), null, Ct);
        _backend.StopOutside(ws.Id);
        var saves = _store.History.Count;
        await using (await FileGate.AcquireAsync(Path.Combine(_dir.Path, "data", "locks", $"{Owner}.{Name}.lock"), Ct))
        {
            var listed = Assert.Single(await manager.ListAsync(Owner, Ct));
            Assert.Equal(WorkspaceState.Running, listed.State);
        }

        Assert.Equal(saves, _store.History.Count);
        Assert.Equal(WorkspaceState.Stopped, Assert.Single(await manager.ListAsync(Owner, Ct)).State);
    }

    [Fact]
    public async Task Race_ListAgainstRmAndResize_100TimesEach_NoGhosts()
    {
        var manager = Manager();
        for (var i = 0; i < 100; i++)
        {
            var name = $"r{i}";
            await manager.UpAsync(Request(name), null, Ct);
            using var done = new CancellationTokenSource();
            var lister = Task.Run(async () =>
            {
                while (!done.IsCancellationRequested)
                {
                    await manager.ListAsync(Owner, Ct);
                    await manager.ReconcileAsync(Ct);
                }
            }, Ct);
            var resized = await manager.ResizeAsync(Owner, name, i % 2 == 0 ? "large" : "small", GpuMode.None, null, Ct);
            Assert.Equal(WorkspaceState.Running, resized.State);
            await manager.DeleteAsync(Owner, name, deleteHome: i % 3 == 0, null, Ct);
            await done.CancelAsync();
            await lister;
            Assert.Null(await _store.FindAsync(Owner, name, Ct));
            Assert.DoesNotContain(await manager.ListAsync(Owner, Ct), w => w.Name == name);
        }

        Assert.Empty(_store.All);
    }

    // ---- found by label ----

    [Fact]
    public async Task StartingWithEmptyHandle_AndARunningServer_BecomesRunningWithItsHandle()
    {
        var ws = await LeftBehindAsync(WorkspaceState.Starting, DateTimeOffset.UtcNow);
        _backend.RunOutside(ws.Id);

        var listed = Assert.Single(await Manager().ListAsync(Owner, Ct));

        Assert.Equal(WorkspaceState.Running, listed.State);
        Assert.NotNull(listed.Endpoint);
        Assert.Equal(ws.Id, JsonDocument.Parse(listed.BackendState).RootElement.GetProperty("container").GetString());
        Assert.Equal(WorkspaceState.Running, Assert.Single(_store.All).State);
        Assert.True(_backend.IsRunning(ws.Id));
    }

    /// <summary>
    /// A start killed after the engine call: the look that adopts the server dates its uptime from the container's
    /// own start, not from the look (seen with the real CLI: `ls` said "0 s" for a server up for 9 s).
    /// </summary>
    [Fact]
    public async Task AnAdoptedServer_CountsItsUptimeFromItsOwnStart()
    {
        var ws = await LeftBehindAsync(WorkspaceState.Starting, DateTimeOffset.UtcNow.AddSeconds(-30));
        var since = DateTimeOffset.UtcNow.AddSeconds(-20);
        _backend.RunOutside(ws.Id, since);

        var listed = Assert.Single(await Manager().ListAsync(Owner, Ct));

        Assert.Equal(WorkspaceState.Running, listed.State);
        Assert.Equal(since, listed.StartedAt);
        Assert.Equal(since, Assert.Single(_store.All).StartedAt);
    }

    [Fact]
    public async Task AnAdoptedServer_WhoseEngineSaysNothingOrATimeToCome_IsDatedFromTheLook()
    {
        var ws = await LeftBehindAsync(WorkspaceState.Starting, DateTimeOffset.UtcNow);
        _backend.RunOutside(ws.Id, DateTimeOffset.UtcNow.AddHours(1)); // a node's clock ahead of ours
        var before = DateTimeOffset.UtcNow;

        var listed = Assert.Single(await Manager().ListAsync(Owner, Ct));

        Assert.InRange(listed.StartedAt!.Value, before, DateTimeOffset.UtcNow);
    }

    [Fact]
    public async Task StoppedRecord_WithARunningServerFoundByLabel_IsNotCalledStopped()
    {
        var ws = await LeftBehindAsync(WorkspaceState.Stopped, DateTimeOffset.UtcNow);
        _backend.RunOutside(ws.Id);

        var listed = Assert.Single(await Manager().ListAsync(Owner, Ct));

        Assert.Equal(WorkspaceState.Running, listed.State);
    }

    /// <summary>
    /// A swarm task replaced after a manager outage (or a container its engine restarted) publishes Jupyter on a new
    /// host port while the record stays Running: the record, and so the hub's route, must follow it.
    /// </summary>
    [Fact]
    public async Task Running_WhoseServerCameBackAtAnotherAddress_GetsThatEndpoint()
    {
        var manager = Manager();
        var ws = await manager.UpAsync(Request(), null, Ct);
        var moved = new Uri("http://10.211.0.12:31999/");
        Assert.NotEqual(moved.ToString(), ws.Endpoint);
        _backend.MoveOutside(ws.Id, moved);

        var listed = Assert.Single(await manager.ListAsync(Owner, Ct));

        Assert.Equal((WorkspaceState.Running, moved.ToString()), (listed.State, listed.Endpoint));
        Assert.Equal(moved.ToString(), Assert.Single(_store.All).Endpoint);
        Assert.True(_backend.IsRunning(ws.Id));
    }

    [Fact]
    public async Task StartingPastItsDeadline_WithAServerThatNeverAnswers_IsStoppedAndFailed()
    {
        _probe.ReadyAfter = null;
        var ws = await LeftBehindAsync(WorkspaceState.Starting, DateTimeOffset.UtcNow.AddMinutes(-10));
        _backend.RunOutside(ws.Id);

        var listed = Assert.Single(await Manager(TimeSpan.FromSeconds(120)).ListAsync(Owner, Ct));

        Assert.Equal(WorkspaceState.Failed, listed.State);
        Assert.Contains("did not answer", listed.LastError, StringComparison.Ordinal);
        Assert.False(_backend.IsRunning(ws.Id));
    }

    [Fact]
    public async Task StartingWithinItsDeadline_WithAServerNotYetAnswering_StaysStarting()
    {
        _probe.ReadyAfter = null;
        var ws = await LeftBehindAsync(WorkspaceState.Starting, DateTimeOffset.UtcNow);
        _backend.RunOutside(ws.Id);

        var listed = Assert.Single(await Manager(TimeSpan.FromSeconds(120)).ListAsync(Owner, Ct));

        Assert.Equal(WorkspaceState.Starting, listed.State);
        Assert.True(_backend.IsRunning(ws.Id));
    }

    [Fact]
    public async Task StartingWithNothingInTheEngine_BecomesStopped()
    {
        await LeftBehindAsync(WorkspaceState.Starting, DateTimeOffset.UtcNow);

        var listed = Assert.Single(await Manager().ListAsync(Owner, Ct));

        Assert.Equal(WorkspaceState.Stopped, listed.State);
        Assert.Contains("interrupted", listed.LastError, StringComparison.Ordinal);
    }

    [Fact]
    public async Task PendingWithNothingInTheEngine_FailsAfterItsDeadline_NotBefore()
    {
        await LeftBehindAsync(WorkspaceState.Pending, DateTimeOffset.UtcNow);
        Assert.Equal(WorkspaceState.Pending, Assert.Single(await Manager().ListAsync(Owner, Ct)).State);

        var old = Assert.Single(_store.All);
        await _store.SaveAsync(old with { UpdatedAt = DateTimeOffset.UtcNow.AddMinutes(-10) }, Ct);
        var listed = Assert.Single(await Manager().ListAsync(Owner, Ct));

        Assert.Equal(WorkspaceState.Failed, listed.State);
        Assert.Contains("interrupted", listed.LastError, StringComparison.Ordinal);
    }

    // ---- stop that fails midway ----

    [Fact]
    public async Task StopFailingMidway_IsFinishedByTheNextCommand_AndStartNeverReplacesTheRunningServer()
    {
        var manager = Manager();
        var ws = await manager.UpAsync(Request(), null, Ct);
        _backend.Unreachable = new HttpRequestException("Connection refused (/var/run/docker.sock)");

        await Assert.ThrowsAnyAsync<Exception>(() => manager.StopAsync(Owner, Name, null, Ct));
        var stopping = Assert.Single(_store.All);
        Assert.Equal(WorkspaceState.Stopping, stopping.State);
        // Whoever looks meanwhile (the hub's list, `dsvm ls`) sees why, and that it is not forgotten.
        Assert.Equal("stop not finished: the workspace engine is not reachable; it is finished when the engine answers again (the next command, or the hub's reconcile)",
            stopping.LastError);
        Assert.True(_backend.IsRunning(ws.Id));

        _backend.Unreachable = null;
        var listed = Assert.Single(await manager.ListAsync(Owner, Ct));
        Assert.Equal(WorkspaceState.Stopped, listed.State);
        Assert.Equal("stop finished after an interruption", listed.LastError);
        Assert.False(_backend.IsRunning(ws.Id));

        var started = await manager.StartAsync(Owner, Name, GpuMode.None, null, Ct);
        Assert.Equal(WorkspaceState.Running, started.State);
        // stop (the repair) before the second start: never two servers, never one replaced blindly.
        var mutations = _backend.Mutations.ToList();
        Assert.Equal([$"start:{ws.Id}", $"stop:{ws.Id}", $"start:{ws.Id}"], mutations);
    }

    /// <summary>A running workspace whose stop failed with the engine unreachable; the engine answers again.</summary>
    private async Task<(WorkspaceManager Manager, Workspace Ws)> StopFailedMidwayAsync()
    {
        var manager = Manager();
        var ws = await manager.UpAsync(Request(), null, Ct);
        _backend.Unreachable = new HttpRequestException("Connection refused");
        await Assert.ThrowsAnyAsync<Exception>(() => manager.StopAsync(Owner, Name, null, Ct));
        _backend.Unreachable = null;
        return (manager, ws);
    }

    [Fact]
    public async Task StopFailingMidway_ThenTheServerGoneMeanwhile_EndsStoppedWithoutTheNote()
    {
        var (manager, ws) = await StopFailedMidwayAsync();
        _backend.StopOutside(ws.Id); // stopped by someone else meanwhile

        var listed = Assert.Single(await manager.ListAsync(Owner, Ct));

        Assert.Equal(WorkspaceState.Stopped, listed.State);
        Assert.Null(listed.LastError);
    }

    [Fact]
    public async Task StartOnAStoppingRecord_FinishesTheStopFirst()
    {
        var (manager, ws) = await StopFailedMidwayAsync();

        var started = await manager.StartAsync(Owner, Name, GpuMode.None, null, Ct);

        Assert.Equal(WorkspaceState.Running, started.State);
        Assert.Equal([$"start:{ws.Id}", $"stop:{ws.Id}", $"start:{ws.Id}"], _backend.Mutations.ToList());
    }

    // ---- the hub's accepted start ----

    [Fact]
    public async Task Accept_PersistsAPendingRecordBeforeAnythingStarts()
    {
        var manager = Manager();

        var accepted = await manager.AcceptAsync(Request(), Ct);

        Assert.Equal(WorkspaceState.Pending, accepted.State);
        Assert.Equal(accepted.Id, Assert.Single(_store.All).Id);
        Assert.Empty(_backend.Mutations);
        var up = await manager.UpAsync(Request(), null, Ct);
        Assert.Equal(accepted.Id, up.Id);
        Assert.Equal(WorkspaceState.Running, up.State);
    }
}
