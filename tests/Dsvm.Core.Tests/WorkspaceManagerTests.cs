using Dsvm.Testing;
using System.Diagnostics;
using System.Text.Json;
using Dsvm.Core.Sizes;
using Dsvm.Core.Specs;
using Dsvm.Core.Workspaces;

namespace Dsvm.Core.Tests;

public sealed class WorkspaceManagerTests : IDisposable
{
    private const string Owner = "alice";
    private const string Name = "proj";
    private const string OwnerId = "u-a11ce0000000";
    private const long GiB = 1024L * 1024 * 1024;

    private readonly TempDir _dir = new();
    private readonly FakeBackend _backend = new();
    private readonly InMemoryWorkspaceStore _store = new();
    private readonly FakeProbe _probe = new();
    private readonly FakeGpuDetector _gpus = new();
    private readonly ListProgress _progress = new();

    /// <summary>A safety net: no test may hang the run.</summary>
    private readonly CancellationTokenSource _testTimeout = new(TimeSpan.FromSeconds(60));

    private CancellationToken Ct => _testTimeout.Token;

    public void Dispose()
    {
        _testTimeout.Dispose();
        _dir.Dispose();
    }

    private DsvmPaths Paths => new(Path.Combine(_dir.Path, "data"), Path.Combine(_dir.Path, "cache"));

    /// <summary>
    /// A manager on the fakes. The start timeout is generous unless a test is about it (then it passes a short one):
    /// 300 ms was the default and failed a test whose five polls took longer on a busy machine (seen once in 10 runs).
    /// </summary>
    private WorkspaceManager Manager(TimeSpan? startTimeout = null) =>
        new(_backend, _store, new SizeCatalog(SizeCatalog.Defaults), _gpus, _probe, Paths, TimeProvider.System,
            new WorkspaceOptions { StartTimeout = startTimeout ?? TimeSpan.FromSeconds(30), PollInterval = TimeSpan.FromMilliseconds(5) });

    private static CreateWorkspaceRequest Request(string name = Name, string environment = "datascience", GpuMode gpu = GpuMode.None,
        string size = "medium", string owner = Owner, string ownerId = OwnerId) => new()
    {
        Name = name,
        Owner = owner,
        OwnerId = ownerId,
        Environment = environment,
        Image = $"dsvm/{environment}:latest",
        GpuMode = gpu,
        Size = size,
    };

    private Task<Workspace> UpAsync(CreateWorkspaceRequest? request = null, WorkspaceManager? manager = null, CancellationToken? ct = null) =>
        (manager ?? Manager()).UpAsync(request ?? Request(), _progress, ct ?? Ct);

    [Fact]
    public async Task Readiness_polls_back_off_from_the_first_interval_to_the_longest()
    {
        var clock = new RecordingTime();
        var manager = new WorkspaceManager(_backend, _store, new SizeCatalog(SizeCatalog.Defaults), _gpus, _probe, Paths, clock,
            new WorkspaceOptions { StartTimeout = TimeSpan.FromSeconds(30), PollInterval = TimeSpan.FromMilliseconds(8), MaxPollInterval = TimeSpan.FromMilliseconds(40) });
        _probe.ReadyAfter = 8;
        await UpAsync(manager: manager);

        // 8 polls, 7 waits between them: 8 ms, then ×1.5 each time, never above 40 ms.
        double[] expected = [8, 12, 18, 27, 40, 40, 40];
        Assert.Equal(expected, clock.Waits.Where(w => w <= TimeSpan.FromMilliseconds(40)).Select(w => w.TotalMilliseconds));
        Assert.Equal(8, _probe.Calls);
    }

    /// <summary>The system clock, noting the due time of every timer made from it (Task.Delay makes one per wait).</summary>
    private sealed class RecordingTime : TimeProvider
    {
        public System.Collections.Concurrent.ConcurrentQueue<TimeSpan> Waits { get; } = new();

        public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period)
        {
            Waits.Enqueue(dueTime);
            return System.CreateTimer(callback, state, dueTime, period);
        }
    }

    private Workspace Stored => Assert.Single(_store.All);

    private void AssertNothingCreated()
    {
        Assert.Empty(_store.All);
        Assert.Empty(_store.History);
        Assert.Empty(_backend.Mutations);
        Assert.Empty(_backend.Starts);
    }

    // ---- up ----

    [Fact]
    public async Task Up_OnTheCli_AfterAnUpgrade_AttachesTheHomeTheNameBasedVersionMade()
    {
        // A single-user install made dsvm-home-local-proj before IDs; after `dsvm rm proj` (home kept) and the upgrade,
        // `dsvm up proj` must find those files again, not start an empty home.
        _backend.ExistingHomes.Add("dsvm-home-local-proj");
        var ws = await UpAsync(Request(owner: "local", ownerId: WorkspaceIds.LocalOwnerId));
        Assert.Equal("dsvm-home-local-proj", ws.HomeVolume);
        var home = Assert.Single(await _store.ListHomesAsync(WorkspaceIds.LocalOwnerId, Ct));
        Assert.Equal("dsvm-home-local-proj", home.Volume);
        Assert.Equal(ws.HomeId, home.Id);
    }

    [Fact]
    public async Task Up_OnTheHub_NeverAttachesANameBasedHome()
    {
        // On the hub a name is no identity: alice-x's old dsvm-home-alice-x-data is not alice's x-data (issue 9).
        _backend.ExistingHomes.Add("dsvm-home-alice-x-data");
        var ws = await UpAsync(Request(name: "x-data"));
        Assert.Equal(WorkspaceIds.HomeObjectName(ws.HomeId), ws.HomeVolume);
    }

    [Fact]
    public async Task Up_CreatesARunningWorkspace()
    {
        var before = DateTimeOffset.UtcNow;

        var ws = await UpAsync();

        Assert.Equal(WorkspaceState.Running, ws.State);
        Assert.Matches("^[0-9a-f]{64}$", ws.Token);
        Assert.Matches("^ws-[0-9a-f]{12}$", ws.Id);
        Assert.Matches("^h-[0-9a-f]{12}$", ws.HomeId);
        Assert.Equal($"dsvm-home-{ws.HomeId}", ws.HomeVolume);
        Assert.Equal(OwnerId, ws.OwnerId);
        var home = Assert.Single(_store.Homes);
        Assert.Equal((ws.HomeId, OwnerId, Name, ws.HomeVolume, "fake"), (home.Id, home.OwnerId, home.Name, home.Volume, home.Backend));
        Assert.Equal(Name, ws.Name);
        Assert.Equal(Owner, ws.Owner);
        Assert.Equal("datascience", ws.Environment);
        Assert.Equal("dsvm/datascience:latest", ws.Image);
        Assert.Equal("medium", ws.Size);
        Assert.Equal("fake", ws.Backend);
        Assert.Equal("/user/alice/proj/", ws.BaseUrl);
        Assert.Equal(FakeBackend.EndpointFor(ws.Id).ToString(), ws.Endpoint);
        Assert.Equal("c-1", ws.ContainerId);
        Assert.Equal("c-1", ws.Handle.State.GetProperty("container").GetString());
        Assert.False(ws.GpuEnabled);
        Assert.False(ws.CpuFallback);
        Assert.Null(ws.LastError);
        Assert.NotNull(ws.StartedAt);
        Assert.InRange(ws.CreatedAt, before, DateTimeOffset.UtcNow);
        Assert.Equal(ws, Stored);

        var start = Assert.Single(_backend.Starts);
        Assert.Equal(ws.Id, start.Id);
        Assert.Equal(ws.Token, start.Token);
        Assert.Equal(ws.HomeVolume, start.HomeVolume);
        Assert.Equal(ws.BaseUrl, start.BaseUrl);
        Assert.Equal(ws.Image, start.Image);
        Assert.Equal("medium", start.Size.Name);
        Assert.False(start.Gpu);
        Assert.Equal(Owner, start.Labels["io.opendsvm.owner"]);
        Assert.Equal(Name, start.Labels["io.opendsvm.name"]);
        Assert.Equal("datascience", start.Labels["io.opendsvm.environment"]);
        Assert.Equal("medium", start.Labels["io.opendsvm.size"]);
        Assert.Equal(OwnerId, start.Labels[WorkspaceLabels.OwnerId]);
        Assert.Equal(ws.HomeId, start.Labels[WorkspaceLabels.Home]);
        Assert.Equal((OwnerId, ws.HomeId), (start.OwnerId, start.HomeId));

        // Readiness is asked of the server itself, with its token, under its base URL.
        var asked = Assert.Single(_probe.Asked);
        Assert.Equal((FakeBackend.EndpointFor(ws.Id), ws.BaseUrl, ws.Token), asked);

        // Pending -> Starting -> (launched) Starting -> Running, every step persisted.
        Assert.Equal(
            [WorkspaceState.Pending, WorkspaceState.Starting, WorkspaceState.Starting, WorkspaceState.Running],
            _store.History.Select(w => w.State));
        Assert.True(File.Exists(Path.Combine(Paths.Data, "locks", "alice.proj.lock")));
    }

    [Fact]
    public async Task Up_TwoWorkspaces_GetDifferentIdsAndTokens()
    {
        var a = await UpAsync(Request("one"));
        var b = await UpAsync(Request("two"));

        Assert.NotEqual(a.Id, b.Id);
        Assert.NotEqual(a.Token, b.Token);
        Assert.Equal($"dsvm-home-{b.HomeId}", b.HomeVolume);
        Assert.NotEqual(a.HomeId, b.HomeId);
        Assert.Equal(2, _store.All.Count);
    }

    [Fact]
    public async Task Up_WaitsUntilTheServerAnswers()
    {
        _probe.ReadyAfter = 5;

        var ws = await UpAsync();

        Assert.Equal(WorkspaceState.Running, ws.State);
        Assert.Equal(5, _probe.Calls);
        Assert.Contains("waiting for Jupyter to answer", _progress.Messages);
    }

    [Fact]
    public async Task Up_NeverReady_FailsWithTimeoutAndTheServersLastLogLines()
    {
        _probe.ReadyAfter = null;
        _backend.Logs = string.Join('\n', Enumerable.Range(1, 20).Select(i => $"log line {i:00}"));
        var manager = Manager(TimeSpan.FromMilliseconds(300));
        var clock = Stopwatch.StartNew();

        var ex = await Assert.ThrowsAsync<WorkspaceStartException>(() => UpAsync(manager: manager));

        Assert.True(clock.Elapsed >= TimeSpan.FromMilliseconds(250), $"failed after {clock.Elapsed}");
        Assert.Equal(WorkspaceFailure.Timeout, ex.Reason);
        Assert.Contains("did not answer within", ex.Message, StringComparison.Ordinal);
        Assert.Contains("last log lines", ex.Message, StringComparison.Ordinal);
        // The last FailureLogLines (15) lines, not more.
        Assert.Contains("log line 20", ex.Message, StringComparison.Ordinal);
        Assert.Contains("log line 06", ex.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("log line 05", ex.Message, StringComparison.Ordinal);

        var ws = Stored;
        Assert.Equal(WorkspaceState.Failed, ws.State);
        Assert.Equal(ex.Message, ws.LastError);
        var stopped = Assert.Single(_backend.Stops);
        Assert.Equal(ws.Id, stopped.Id);
        Assert.Equal("c-1", stopped.State.GetProperty("container").GetString());
        Assert.False(_backend.IsRunning(ws.Id));
        Assert.True(_probe.Calls > 1);
    }

    [Fact]
    public async Task Up_ServerExitsDuringStart_FailsFastWithBackendReason()
    {
        _backend.Mode = FakeStart.Crash;
        _backend.ExitDetail = "exited, exit code 2";
        _backend.Logs = "Traceback (most recent call last):\nModuleNotFoundError: No module named 'jupyterlab'";
        _probe.ReadyAfter = null;
        var timeout = TimeSpan.FromSeconds(20);
        var clock = Stopwatch.StartNew();

        var ex = await Assert.ThrowsAsync<WorkspaceStartException>(() => UpAsync(manager: Manager(timeout)));

        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(5), $"failed after {clock.Elapsed}, timeout {timeout}");
        Assert.Equal(WorkspaceFailure.Backend, ex.Reason);
        Assert.Contains("the server exited (exited, exit code 2)", ex.Message, StringComparison.Ordinal);
        Assert.Contains("No module named 'jupyterlab'", ex.Message, StringComparison.Ordinal);
        Assert.Equal(WorkspaceState.Failed, Stored.State);
        Assert.Equal(ex.Message, Stored.LastError);
        Assert.Single(_backend.Stops);
    }

    [Fact]
    public async Task Up_BackendRefusesToStart_FailsWithItsReasonAndNoStop()
    {
        _backend.Mode = FakeStart.Fail;
        _backend.FailWith = new WorkspaceStartException(WorkspaceFailure.Image, "image 'dsvm/datascience:latest' is not in the local engine");

        var ex = await Assert.ThrowsAsync<WorkspaceStartException>(() => UpAsync());

        Assert.Equal(WorkspaceFailure.Image, ex.Reason);
        Assert.Contains("is not in the local engine", ex.Message, StringComparison.Ordinal);
        var ws = Stored;
        Assert.Equal(WorkspaceState.Failed, ws.State);
        Assert.Contains("failed to start", ws.LastError, StringComparison.Ordinal);
        Assert.Contains("is not in the local engine", ws.LastError, StringComparison.Ordinal);
        Assert.Empty(_backend.Stops);
    }

    [Fact]
    public async Task Up_BackendHangs_FailsWithTimeout()
    {
        _backend.Mode = FakeStart.Hang;

        var ex = await Assert.ThrowsAsync<WorkspaceStartException>(() => UpAsync(manager: Manager(TimeSpan.FromMilliseconds(200))));

        Assert.Equal(WorkspaceFailure.Timeout, ex.Reason);
        Assert.Equal(WorkspaceState.Failed, Stored.State);
        Assert.Empty(_backend.Stops);
    }

    [Fact]
    public async Task Up_AfterAFailure_StartAsyncStartsItAgain()
    {
        _backend.Mode = FakeStart.Crash;
        _probe.ReadyAfter = null;
        var manager = Manager(TimeSpan.FromSeconds(20));
        await Assert.ThrowsAsync<WorkspaceStartException>(() => UpAsync(manager: manager));
        var failed = Stored;

        _backend.Mode = FakeStart.Succeed;
        _probe.ReadyAfter = _probe.Calls + 1;
        var ws = await manager.StartAsync(Owner, Name, GpuMode.None, _progress, Ct);

        Assert.Equal(WorkspaceState.Running, ws.State);
        Assert.Null(ws.LastError);
        Assert.Equal(failed.Token, ws.Token);
        Assert.Equal(2, _backend.Starts.Count);
    }

    [Fact]
    public async Task Up_GpuRequiredOnCpuHost_FailsBeforeAnythingIsRecordedOrStarted()
    {
        _gpus.Count = 0;

        var ex = await Assert.ThrowsAsync<WorkspaceStartException>(() => UpAsync(Request(environment: "gpu", gpu: GpuMode.Required, size: "gpu-small")));

        Assert.Equal(WorkspaceFailure.Gpu, ex.Reason);
        Assert.Contains("no GPU", ex.Message, StringComparison.Ordinal);
        AssertNothingCreated();
    }

    [Fact]
    public async Task Up_GpuRequiredOnCpuSize_FailsBeforeAnythingIsRecordedOrStarted()
    {
        _gpus.Count = 2;

        var ex = await Assert.ThrowsAsync<WorkspaceStartException>(() => UpAsync(Request(environment: "gpu", gpu: GpuMode.Required, size: "medium")));

        Assert.Equal(WorkspaceFailure.Gpu, ex.Reason);
        AssertNothingCreated();
    }

    [Fact]
    public async Task Up_CpuOnlyEnvironmentOnGpuSize_FailsBeforeAnythingIsRecordedOrStarted()
    {
        _gpus.Count = 1;

        var ex = await Assert.ThrowsAsync<WorkspaceStartException>(() => UpAsync(Request(gpu: GpuMode.None, size: "gpu-small")));

        Assert.Equal(WorkspaceFailure.Gpu, ex.Reason);
        AssertNothingCreated();
    }

    [Fact]
    public async Task Up_SizeLargerThanHost_FailsWithCapacityBeforeAnythingIsRecordedOrStarted()
    {
        _backend.Capacity = new HostCapacity(4, 64 * GiB, 0);

        var ex = await Assert.ThrowsAsync<WorkspaceStartException>(() => UpAsync(Request(size: "xlarge")));

        Assert.Equal(WorkspaceFailure.Capacity, ex.Reason);
        Assert.Contains("size 'xlarge' does not fit this host", ex.Message, StringComparison.Ordinal);
        Assert.Contains("needs 8 vCPUs; this host has 4", ex.Message, StringComparison.Ordinal);
        AssertNothingCreated();
    }

    [Fact]
    public async Task Up_MemoryLargerThanHost_FailsWithCapacity()
    {
        _backend.Capacity = new HostCapacity(64, 8 * GiB, 0);

        var ex = await Assert.ThrowsAsync<WorkspaceStartException>(() => UpAsync(Request(size: "memory-large")));

        Assert.Equal(WorkspaceFailure.Capacity, ex.Reason);
        AssertNothingCreated();
    }

    [Fact]
    public async Task Up_GpuOptionalOnCpuHost_FallsBackToCpuAndSaysSo()
    {
        _gpus.Count = 0;

        var ws = await UpAsync(Request(environment: "gpu", gpu: GpuMode.Optional, size: "gpu-small"));

        Assert.Equal(WorkspaceState.Running, ws.State);
        Assert.False(ws.GpuEnabled);
        Assert.True(ws.CpuFallback);
        Assert.False(Assert.Single(_backend.Starts).Gpu);
        Assert.Contains(_progress.Messages, m => m.Contains("starting on CPU", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Up_GpuRequiredOnGpuHost_StartsWithGpu()
    {
        // The detector's count wins over a backend that sees no GPU.
        _gpus.Count = 1;

        var ws = await UpAsync(Request(environment: "gpu", gpu: GpuMode.Required, size: "gpu-small"));

        Assert.Equal(WorkspaceState.Running, ws.State);
        Assert.True(ws.GpuEnabled);
        Assert.False(ws.CpuFallback);
        var start = Assert.Single(_backend.Starts);
        Assert.True(start.Gpu);
        Assert.Equal(1, start.Size.Gpus);
    }

    [Fact]
    public async Task Up_UnknownSize_IsNotFoundAndCreatesNothing()
    {
        var ex = await Assert.ThrowsAsync<NotFoundException>(() => UpAsync(Request(size: "larg")));

        Assert.Contains("did you mean 'large'?", ex.Message, StringComparison.Ordinal);
        AssertNothingCreated();
    }

    [Theory]
    [InlineData("Bad_Name")]
    [InlineData("-x")]
    [InlineData("1abc")]
    [InlineData("")]
    [InlineData("has space")]
    [InlineData("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")]
    public async Task Up_InvalidName_IsAUsageError(string name)
    {
        var ex = await Assert.ThrowsAsync<UsageException>(() => UpAsync(Request(name)));

        Assert.Contains("not a valid workspace name", ex.Message, StringComparison.Ordinal);
        AssertNothingCreated();
        Assert.False(Directory.Exists(Path.Combine(Paths.Data, "locks")));
    }

    [Fact]
    public async Task Up_InvalidOwner_IsAUsageError()
    {
        var ex = await Assert.ThrowsAsync<UsageException>(() => UpAsync(Request(owner: "Alice")));

        Assert.Contains("owner name", ex.Message, StringComparison.Ordinal);
        AssertNothingCreated();
    }

    [Fact]
    public async Task Up_LongestValidName_IsAccepted()
    {
        var name = "a" + new string('0', 39);

        var ws = await UpAsync(Request(name));

        Assert.Equal(40, ws.Name.Length);
        Assert.Equal(WorkspaceState.Running, ws.State);
    }

    [Fact]
    public async Task Up_ExistingRunningWorkspace_IsReturnedWithoutANewStart()
    {
        var manager = Manager();
        var first = await UpAsync(manager: manager);

        var second = await UpAsync(manager: manager);

        Assert.Equal(first.Id, second.Id);
        Assert.Equal(first.Token, second.Token);
        Assert.Equal(WorkspaceState.Running, second.State);
        Assert.Single(_backend.Starts);
        Assert.Empty(_backend.Stops);
    }

    [Fact]
    public async Task Up_ExistingStoppedWorkspace_StartsItAgainWithTheSameHomeAndToken()
    {
        var manager = Manager();
        var first = await UpAsync(manager: manager);
        await manager.StopAsync(Owner, Name, _progress, Ct);

        var again = await UpAsync(manager: manager);

        Assert.Equal(WorkspaceState.Running, again.State);
        Assert.Equal(first.Id, again.Id);
        Assert.Equal(first.Token, again.Token);
        Assert.Equal(first.HomeVolume, again.HomeVolume);
        Assert.Equal(2, _backend.Starts.Count);
        Assert.All(_backend.Starts, s => Assert.Equal(first.HomeVolume, s.HomeVolume));
    }

    [Fact]
    public async Task Up_ExistingWorkspaceWithAnotherEnvironment_IsAConflict()
    {
        var manager = Manager();
        await UpAsync(manager: manager);

        var ex = await Assert.ThrowsAsync<ConflictException>(() => UpAsync(Request(environment: "minimal"), manager));

        Assert.Contains("already exists with environment 'datascience'", ex.Message, StringComparison.Ordinal);
        Assert.Single(_backend.Starts);
        Assert.Equal("datascience", Stored.Environment);
    }

    [Fact]
    public async Task Up_ExistingWorkspaceWithAnotherSize_IsAConflictPointingAtResize()
    {
        var manager = Manager();
        await UpAsync(manager: manager);

        var ex = await Assert.ThrowsAsync<ConflictException>(() => UpAsync(Request(size: "large"), manager));

        Assert.Contains("dsvm resize proj --size large", ex.Message, StringComparison.Ordinal);
        Assert.Single(_backend.Starts);
    }

    [Fact]
    public async Task Up_ConcurrentCallsForOneName_MakeOneWorkspaceAndOneStart()
    {
        _backend.StartDelay = TimeSpan.FromMilliseconds(500);
        var manager = Manager(TimeSpan.FromSeconds(20));

        var results = await Task.WhenAll(
            Task.Run(() => UpAsync(manager: manager), Ct),
            Task.Run(() => UpAsync(manager: Manager(TimeSpan.FromSeconds(20))), Ct));

        Assert.Equal(results[0].Id, results[1].Id);
        Assert.Equal(results[0].Token, results[1].Token);
        Assert.All(results, w => Assert.Equal(WorkspaceState.Running, w.State));
        Assert.Single(_store.All);
        Assert.Single(_backend.Starts);
        Assert.Contains(_progress.Messages, m => m.StartsWith("waiting: another command is working on proj", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Up_CancelledWhileTheBackendStarts_LeavesARecordThatStartsLater()
    {
        _backend.Mode = FakeStart.Hang;
        var manager = Manager(TimeSpan.FromSeconds(20));
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(Ct);
        _backend.OnStart = () => cts.CancelAfter(TimeSpan.FromMilliseconds(20));

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => UpAsync(manager: manager, ct: cts.Token));

        var left = Stored;
        Assert.Equal(WorkspaceState.Starting, left.State);
        Assert.Null(left.ContainerId);

        _backend.OnStart = null;
        _backend.Mode = FakeStart.Succeed;
        var ws = await manager.StartAsync(Owner, Name, GpuMode.None, _progress, Ct);

        Assert.Equal(WorkspaceState.Running, ws.State);
        Assert.Equal(left.Id, ws.Id);
        Assert.Equal(left.Token, ws.Token);
        Assert.Equal(2, _backend.Starts.Count);
        Assert.Equal(ws, Stored);
    }

    [Fact]
    public async Task Up_CancelledWhileWaitingForReadiness_LeavesARecordThatStartsLater()
    {
        _probe.ReadyAfter = null;
        var manager = Manager(TimeSpan.FromSeconds(20));
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(Ct);
        _probe.OnAsk = n =>
        {
            if (n == 3)
            {
                cts.Cancel();
            }
        };

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => UpAsync(manager: manager, ct: cts.Token));

        var left = Stored;
        Assert.Equal(WorkspaceState.Starting, left.State);
        Assert.Equal("c-1", left.ContainerId);

        // The server came up meanwhile: the next start finds it instead of starting another.
        _probe.OnAsk = null;
        _probe.ReadyAfter = 0;
        var ws = await manager.StartAsync(Owner, Name, GpuMode.None, _progress, Ct);

        Assert.Equal(WorkspaceState.Running, ws.State);
        Assert.Equal(left.Id, ws.Id);
        Assert.Single(_backend.Starts);
        Assert.Equal(ws.State, Stored.State);
    }

    // ---- start / resize / stop / delete ----

    [Fact]
    public async Task StartAsync_UnknownWorkspace_IsNotFound()
    {
        var ex = await Assert.ThrowsAsync<NotFoundException>(() => Manager().StartAsync(Owner, "nope", GpuMode.None, _progress, Ct));

        Assert.Contains("no workspace 'nope'", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Resize_Running_StopsThenStartsWithTheNewSizeOnTheSameHome()
    {
        var manager = Manager();
        var before = await UpAsync(manager: manager);

        var after = await manager.ResizeAsync(Owner, Name, "large", GpuMode.None, _progress, Ct);

        Assert.Equal(WorkspaceState.Running, after.State);
        Assert.Equal("large", after.Size);
        Assert.Equal(before.Id, after.Id);
        Assert.Equal(before.HomeVolume, after.HomeVolume);
        Assert.Equal(before.Token, after.Token);
        Assert.Equal(after, Stored);

        Assert.Equal([$"start:{before.Id}", $"stop:{before.Id}", $"start:{before.Id}"], _backend.Mutations);
        var starts = _backend.Starts.ToArray();
        Assert.Equal("medium", starts[0].Size.Name);
        Assert.Equal("large", starts[1].Size.Name);
        Assert.Equal(before.HomeVolume, starts[1].HomeVolume);
        Assert.Equal(before.Token, starts[1].Token);
        Assert.Equal("c-1", Assert.Single(_backend.Stops).State.GetProperty("container").GetString());
    }

    [Fact]
    public async Task Resize_ToASizeThatDoesNotFit_LeavesTheWorkspaceRunning()
    {
        _backend.Capacity = new HostCapacity(4, 64 * GiB, 0);
        var manager = Manager();
        var before = await UpAsync(manager: manager);

        var ex = await Assert.ThrowsAsync<WorkspaceStartException>(() => manager.ResizeAsync(Owner, Name, "xlarge", GpuMode.None, _progress, Ct));

        Assert.Equal(WorkspaceFailure.Capacity, ex.Reason);
        Assert.Empty(_backend.Stops);
        Assert.Single(_backend.Starts);
        Assert.Equal(WorkspaceState.Running, Stored.State);
        Assert.Equal("medium", Stored.Size);
        Assert.True(_backend.IsRunning(before.Id));
    }

    [Fact]
    public async Task Resize_ToAGpuSizeForACpuEnvironment_LeavesTheWorkspaceRunning()
    {
        _gpus.Count = 1;
        var manager = Manager();
        await UpAsync(manager: manager);

        var ex = await Assert.ThrowsAsync<WorkspaceStartException>(() => manager.ResizeAsync(Owner, Name, "gpu-small", GpuMode.None, _progress, Ct));

        Assert.Equal(WorkspaceFailure.Gpu, ex.Reason);
        Assert.Empty(_backend.Stops);
        Assert.Equal(WorkspaceState.Running, Stored.State);
    }

    [Fact]
    public async Task Resize_Stopped_OnlyChangesTheSize()
    {
        var manager = Manager();
        await UpAsync(manager: manager);
        await manager.StopAsync(Owner, Name, _progress, Ct);

        var ws = await manager.ResizeAsync(Owner, Name, "small", GpuMode.None, _progress, Ct);

        Assert.Equal(WorkspaceState.Stopped, ws.State);
        Assert.Equal("small", ws.Size);
        Assert.Equal(ws, Stored);
        Assert.Single(_backend.Starts);
        Assert.Single(_backend.Stops);
    }

    [Fact]
    public async Task Resize_UnknownSize_IsNotFound()
    {
        var manager = Manager();
        await UpAsync(manager: manager);

        await Assert.ThrowsAsync<NotFoundException>(() => manager.ResizeAsync(Owner, Name, "mediun", GpuMode.None, _progress, Ct));

        Assert.Equal(WorkspaceState.Running, Stored.State);
        Assert.Empty(_backend.Stops);
    }

    [Fact]
    public async Task Stop_SetsStoppedAndClearsEndpointAndContainer()
    {
        var manager = Manager();
        var running = await UpAsync(manager: manager);

        var ws = await manager.StopAsync(Owner, Name, _progress, Ct);

        Assert.Equal(WorkspaceState.Stopped, ws.State);
        Assert.Null(ws.Endpoint);
        Assert.Null(ws.ContainerId);
        Assert.Equal(ws, Stored);
        Assert.Equal(running.Token, ws.Token);
        Assert.Equal(running.Id, Assert.Single(_backend.Stops).Id);
        Assert.False(_backend.IsRunning(running.Id));
        Assert.Contains(_store.History, w => w.State == WorkspaceState.Stopping);
    }

    [Fact]
    public async Task Stop_AlreadyStopped_DoesNotCallTheBackendAgain()
    {
        var manager = Manager();
        await UpAsync(manager: manager);
        await manager.StopAsync(Owner, Name, _progress, Ct);

        var ws = await manager.StopAsync(Owner, Name, _progress, Ct);

        Assert.Equal(WorkspaceState.Stopped, ws.State);
        Assert.Single(_backend.Stops);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Delete_RemovesTheRecordAndKeepsTheHomeUnlessAsked(bool deleteHome)
    {
        var manager = Manager();
        var ws = await UpAsync(manager: manager);

        await manager.DeleteAsync(Owner, Name, deleteHome, _progress, Ct);

        var (handle, home, keepHome) = Assert.Single(_backend.Deletes);
        Assert.Equal(ws.Id, handle.Id);
        Assert.Equal("c-1", handle.State.GetProperty("container").GetString());
        Assert.Equal(ws.HomeVolume, home);
        Assert.Equal(deleteHome ? 0 : 1, _store.Homes.Count);
        Assert.Equal(!deleteHome, keepHome);
        Assert.Empty(_store.All);
        await Assert.ThrowsAsync<NotFoundException>(() => manager.GetAsync(Owner, Name, Ct));
    }

    [Fact]
    public async Task Delete_UnknownWorkspace_IsNotFoundAndCallsNoBackend()
    {
        await Assert.ThrowsAsync<NotFoundException>(() => Manager().DeleteAsync(Owner, Name, true, _progress, Ct));

        Assert.Empty(_backend.Deletes);
    }

    [Fact]
    public async Task Logs_AreTheBackends()
    {
        var manager = Manager();
        await UpAsync(manager: manager);
        _backend.Logs = "a\nb\nc";

        Assert.Equal("b\nc", await manager.LogsAsync(Owner, Name, 2, Ct));
    }

    // ---- reconcile / list ----

    [Fact]
    public async Task Reconcile_AsksTheBackendToSweepItsOrphans_AndReportsWhatWasRemoved()
    {
        var manager = Manager();
        await UpAsync(manager: manager);
        _backend.Sweeps.Add("removed network dsvm-net-ws-0a0b0c0d0e0f (no service of workspace ws-0a0b0c0d0e0f for 11 min)");

        var report = await manager.ReconcileAsync(Ct);

        Assert.Equal(_backend.Sweeps, report.Repaired);
    }

    [Fact]
    public async Task Reconcile_RunningRecordWhoseServerStopped_BecomesStopped_AndOrphansAreReported()
    {
        var manager = Manager();
        var ws = await UpAsync(manager: manager);
        var other = await UpAsync(Request("other"), manager);
        _backend.ExitDetail = "exited, exit code 137, killed: out of memory";
        _backend.StopOutside(ws.Id);
        var orphan = new ManagedResource("ws-0123456789ab", "dsvm-bob-lost", true,
            new WorkspaceHandle("ws-0123456789ab", "fake", JsonSerializer.SerializeToElement(new { container = "c-99" })));
        _backend.Orphans.Add(orphan);

        var report = await manager.ReconcileAsync(Ct);

        Assert.Equal("alice/proj: Running -> Stopped", Assert.Single(report.Repaired));
        Assert.Same(orphan, Assert.Single(report.Unknown));
        var stored = await manager.GetAsync(Owner, Name, Ct);
        Assert.Equal(WorkspaceState.Stopped, stored.State);
        Assert.Null(stored.Endpoint);
        Assert.NotNull(stored.LastError);
        Assert.Contains("found stopped", stored.LastError, StringComparison.Ordinal);
        Assert.Contains("killed: out of memory", stored.LastError, StringComparison.Ordinal);
        Assert.Equal(WorkspaceState.Running, (await manager.GetAsync(Owner, "other", Ct)).State);
        Assert.Equal(other.Id, (await manager.GetAsync(Owner, "other", Ct)).Id);
        // Reconciling only reports: it neither starts, stops nor deletes.
        Assert.Equal(2, _backend.Starts.Count);
        Assert.Empty(_backend.Stops);
        Assert.Empty(_backend.Deletes);
    }

    [Fact]
    public async Task Reconcile_RecordWhoseContainerIsGone_BecomesStopped()
    {
        var manager = Manager();
        var ws = await UpAsync(manager: manager);
        await _backend.DeleteAsync(ws.Handle, ws.HomeVolume, keepHome: true, Ct);

        var report = await manager.ReconcileAsync(Ct);

        Assert.Single(report.Repaired);
        Assert.Empty(report.Unknown);
        var stored = Stored;
        Assert.Equal(WorkspaceState.Stopped, stored.State);
        Assert.Contains("container not found", stored.LastError, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Reconcile_EverythingInLine_RepairsNothing()
    {
        var manager = Manager();
        await UpAsync(manager: manager);

        var report = await manager.ReconcileAsync(Ct);

        Assert.Empty(report.Repaired);
        Assert.Empty(report.Unknown);
    }

    [Fact]
    public async Task List_ChecksStatesAgainstTheBackend()
    {
        var manager = Manager();
        var ws = await UpAsync(manager: manager);
        await UpAsync(Request("other"), manager);
        _backend.StopOutside(ws.Id);

        var list = await manager.ListAsync(Owner, Ct);

        Assert.Equal(["other", "proj"], list.Select(w => w.Name));
        Assert.Equal([WorkspaceState.Running, WorkspaceState.Stopped], list.Select(w => w.State));
        Assert.Empty(await manager.ListAsync("bob", Ct));
    }

    // ---- identity (issue 9) ----

    [Fact]
    public async Task NamesThatConcatenateAlike_GetTheirOwnHomesAndLocks()
    {
        var manager = Manager();
        var a = await UpAsync(Request("x-data", owner: "alice", ownerId: "u-a11ce0000001"), manager);
        var b = await UpAsync(Request("data", owner: "alice-x", ownerId: "u-a11ce0000002"), manager);

        Assert.NotEqual(a.HomeVolume, b.HomeVolume);
        Assert.NotEqual(a.HomeId, b.HomeId);
        Assert.True(File.Exists(Path.Combine(Paths.Data, "locks", "alice.x-data.lock")));
        Assert.True(File.Exists(Path.Combine(Paths.Data, "locks", "alice-x.data.lock")));

        await manager.DeleteAsync("alice-x", "data", deleteHome: true, _progress, Ct);
        Assert.Equal(b.HomeVolume, Assert.Single(_backend.Deletes).HomeVolume);
        Assert.Equal(a.HomeId, Assert.Single(_store.Homes).Id);
    }

    [Theory]
    [InlineData("..", "x")]
    [InlineData("alice", "../../etc")]
    [InlineData("alice", "proj\n")]
    public async Task NamesThatCouldLeaveTheLocksFolder_AreRefused(string owner, string name)
    {
        await Assert.ThrowsAsync<UsageException>(() => Manager().StopAsync(owner, name, _progress, Ct));
        Assert.False(Directory.Exists(Path.Combine(Paths.Data, "locks")) && Directory.EnumerateFiles(Path.Combine(Paths.Data, "locks")).Any());
    }

    [Fact]
    public async Task AKeptHome_IsFoundAgainByOwnerId_NeverByOwnerName()
    {
        var manager = Manager();
        var first = await UpAsync(manager: manager);
        await manager.DeleteAsync(Owner, Name, deleteHome: false, _progress, Ct);

        var again = await UpAsync(manager: manager);
        Assert.Equal(first.HomeId, again.HomeId);
        Assert.Equal(first.HomeVolume, again.HomeVolume);
        await manager.DeleteAsync(Owner, Name, deleteHome: false, _progress, Ct);

        // Same user name, another account (another ID): a fresh home.
        var stranger = await UpAsync(Request(ownerId: "u-0ther0000000"), manager);
        Assert.NotEqual(first.HomeId, stranger.HomeId);
        Assert.Equal(2, _store.Homes.Count);
    }

    [Fact]
    public async Task RemovingAnOwner_DeletesTheirWorkspaces_AndOrphansTheirHomes_ThenReassignOrPurge()
    {
        var manager = Manager();
        var ws = await UpAsync(manager: manager);
        var other = await UpAsync(Request("keep", owner: "bob", ownerId: "u-b0b000000000"), manager);

        Assert.Equal(1, await manager.RemoveOwnerAsync(Owner, OwnerId, Ct));

        Assert.True(Assert.Single(_backend.Deletes).KeepHome);
        Assert.Equal(other.Id, Assert.Single(_store.All).Id);
        var orphan = Assert.Single(_store.Homes, h => h.Id == ws.HomeId);
        Assert.NotNull(orphan.OrphanedAt);
        Assert.Null(Assert.Single(_store.Homes, h => h.Id == other.HomeId).OrphanedAt);

        // A new account with the reused name (new ID) gets a fresh home.
        var reborn = await UpAsync(Request(ownerId: "u-a11ce0000009"), manager);
        Assert.NotEqual(ws.HomeId, reborn.HomeId);
        await manager.DeleteAsync(Owner, Name, deleteHome: true, _progress, Ct);

        // An admin gives the orphaned home to bob, attached to his workspace 'old-proj'.
        await Assert.ThrowsAsync<ConflictException>(() => manager.ReassignHomeAsync(ws.HomeId, "bob", "u-b0b000000000", "keep", Ct));
        var moved = await manager.ReassignHomeAsync(ws.HomeId, "bob", "u-b0b000000000", "old-proj", Ct);
        Assert.Null(moved.OrphanedAt);
        var bobs = await UpAsync(Request("old-proj", owner: "bob", ownerId: "u-b0b000000000"), manager);
        Assert.Equal(ws.HomeVolume, bobs.HomeVolume);

        // Purging a home in use is refused; once unused it goes, with its volume.
        await Assert.ThrowsAsync<ConflictException>(() => manager.PurgeHomeAsync(ws.HomeId, Ct));
        await manager.DeleteAsync("bob", "old-proj", deleteHome: false, _progress, Ct);
        await manager.PurgeHomeAsync(ws.HomeId, Ct);
        Assert.DoesNotContain(_store.Homes, h => h.Id == ws.HomeId);
        var purge = _backend.Deletes.Last();
        Assert.Equal((IWorkspaceBackend.NoWorkspaceId, ws.HomeVolume, false), (purge.Handle.Id, purge.HomeVolume, purge.KeepHome));
        await Assert.ThrowsAsync<NotFoundException>(() => manager.PurgeHomeAsync(ws.HomeId, Ct));
    }

    [Fact]
    public async Task LegacyRecords_AreAdoptedWithTheirOldVolumeAsTheirHome()
    {
        var now = DateTimeOffset.UtcNow;
        Workspace Legacy(string owner, string name) => new()
        {
            Id = "ws-0000000000" + (owner == "alice" ? "a1" : "b1"), Name = name, Owner = owner, Environment = "datascience", Image = "dsvm/datascience:latest",
            Size = "medium", Backend = "fake", HomeVolume = $"dsvm-home-{owner}-{name}", Token = "t", State = WorkspaceState.Stopped, CreatedAt = now, UpdatedAt = now,
        };
        await _store.SaveAsync(Legacy("alice", "proj"), Ct);
        await _store.SaveAsync(Legacy("gone", "proj"), Ct);
        var manager = Manager();

        Assert.Equal(2, await manager.AdoptLegacyRecordsAsync(o => o == "alice" ? OwnerId : null, Ct));

        var w = Assert.Single(_store.All);
        Assert.Equal(OwnerId, w.OwnerId);
        var home = Assert.Single(_store.Homes, h => h.Id == w.HomeId);
        Assert.Equal(("dsvm-home-alice-proj", OwnerId, "proj", (DateTimeOffset?)null), (home.Volume, home.OwnerId, home.Name, home.OrphanedAt));
        var orphan = Assert.Single(_store.Homes, h => h.Id != w.HomeId);
        Assert.Equal("dsvm-home-gone-proj", orphan.Volume);
        Assert.NotNull(orphan.OrphanedAt);
        Assert.True(Assert.Single(_backend.Deletes).KeepHome);

        // Idempotent; and the adopted home is what the next start mounts.
        Assert.Equal(0, await manager.AdoptLegacyRecordsAsync(_ => OwnerId, Ct));
        var started = await manager.StartAsync(Owner, Name, GpuMode.None, _progress, Ct);
        Assert.Equal("dsvm-home-alice-proj", Assert.Single(_backend.Starts).HomeVolume);
        Assert.Equal(home.Id, started.HomeId);
    }
}
