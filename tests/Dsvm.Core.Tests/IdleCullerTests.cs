using Dsvm.Testing;
using System.Collections.Concurrent;
using System.Threading.Channels;
using Dsvm.Core.Sizes;
using Dsvm.Core.Specs;
using Dsvm.Core.Workspaces;
using Microsoft.Extensions.Time.Testing;

namespace Dsvm.Core.Tests;

public sealed class IdleCullerTests : IDisposable
{
    private const string Owner = "alice";
    private static readonly TimeSpan Hour = TimeSpan.FromHours(1);

    private readonly TempDir _dir = new();
    private readonly FakeBackend _backend = new();
    private readonly InMemoryWorkspaceStore _store = new();
    private readonly FakeActivityClient _activity = new();
    private readonly TimerWatchingTimeProvider _time = new(new DateTimeOffset(2025, 1, 31, 9, 0, 0, TimeSpan.Zero));
    private readonly FlakyStore _cullerStore;
    private readonly WorkspaceManager _manager;

    /// <summary>A safety net: no test may hang the run.</summary>
    private readonly CancellationTokenSource _testTimeout = new(TimeSpan.FromSeconds(60));

    public IdleCullerTests()
    {
        _manager = new WorkspaceManager(_backend, _store, new SizeCatalog(SizeCatalog.Defaults), new FakeGpuDetector(), new FakeProbe(),
            new DsvmPaths(Path.Combine(_dir.Path, "data"), Path.Combine(_dir.Path, "cache")), _time,
            new WorkspaceOptions { StartTimeout = TimeSpan.FromSeconds(30), PollInterval = TimeSpan.FromMilliseconds(5) });
        _cullerStore = new FlakyStore(_store);
    }

    private CancellationToken Ct => _testTimeout.Token;

    private DateTimeOffset Now => _time.GetUtcNow();

    public void Dispose()
    {
        _testTimeout.Dispose();
        _dir.Dispose();
    }

    private IdleCuller Culler(IdleCullerOptions? options = null, Action<CullPass>? onPass = null) =>
        new(_manager, _cullerStore, _activity, _time, options ?? new IdleCullerOptions(), onPass);

    private Task<Workspace> UpAsync(string name) => _manager.UpAsync(new CreateWorkspaceRequest
    {
        Name = name, Owner = Owner, OwnerId = WorkspaceIds.LocalOwnerId, Environment = "minimal", Image = "dsvm/minimal:latest", GpuMode = GpuMode.None, Size = "small",
    }, null, Ct);

    private async Task<Workspace> StoredAsync(string name) => (await _store.FindAsync(Owner, name, Ct))!;

    private static JupyterActivity Idle(DateTimeOffset last, int kernels = 1, int busy = 0, int connections = 0) =>
        new(last, kernels, busy, connections);

    [Fact]
    public void DefaultsCullAfterAnHourCheckEveryMinuteAndNeverCullBusyKernels()
    {
        var o = new IdleCullerOptions();

        Assert.Equal(Hour, o.IdleTimeout);
        Assert.Equal(TimeSpan.FromMinutes(1), o.Interval);
        Assert.False(o.CullBusy);
    }

    [Fact]
    public async Task AServerIdleBeyondTheTimeoutIsStoppedThroughTheBackendAndKeepsItsHome()
    {
        var w = await UpAsync("proj");
        _activity.Set("proj", Idle(Now - TimeSpan.FromMinutes(62)));

        var decision = Assert.Single(await Culler().RunOnceAsync(Ct));

        Assert.Equal(new CullDecision(Owner, "proj", true, "idle for 1h02m"), decision);
        Assert.Equal(w.Id, Assert.Single(_backend.Stops).Id);
        Assert.Empty(_backend.Deletes);
        Assert.False(_backend.IsRunning(w.Id));
        var stored = await StoredAsync("proj");
        Assert.Equal(WorkspaceState.Stopped, stored.State);
        Assert.Equal(w.HomeVolume, stored.HomeVolume);
        Assert.Equal(w.Token, stored.Token);

        // The server was asked about itself with its own endpoint and token.
        var asked = Assert.Single(_activity.Asked);
        Assert.Equal((w.Endpoint, w.Token), (asked.Endpoint, asked.Token));

        // A culled workspace starts again with the same home.
        var again = await _manager.StartAsync(Owner, "proj", GpuMode.None, null, Ct);
        Assert.Equal(WorkspaceState.Running, again.State);
        Assert.Equal(w.HomeVolume, again.HomeVolume);
    }

    [Fact]
    public async Task IdleForExactlyTheTimeoutIsCulled()
    {
        await UpAsync("proj");
        _activity.Set("proj", Idle(Now - Hour, kernels: 0));

        var decision = Assert.Single(await Culler().RunOnceAsync(Ct));

        Assert.True(decision.Culled);
        Assert.Equal("idle for 1h00m", decision.Reason);
    }

    [Fact]
    public async Task ABusyKernelIsNeverCulledHoweverOldItsActivity()
    {
        var w = await UpAsync("proj");
        _activity.Set("proj", Idle(Now - TimeSpan.FromDays(3), kernels: 2, busy: 1));

        var decision = Assert.Single(await Culler(new IdleCullerOptions { IdleTimeout = TimeSpan.Zero }).RunOnceAsync(Ct));

        Assert.False(decision.Culled);
        Assert.StartsWith("kernel busy", decision.Reason, StringComparison.Ordinal);
        Assert.Contains("1 of 2", decision.Reason, StringComparison.Ordinal);
        Assert.Contains("72h00m ago", decision.Reason, StringComparison.Ordinal);
        Assert.Empty(_backend.Stops);
        Assert.True(_backend.IsRunning(w.Id));
        Assert.Equal(WorkspaceState.Running, (await StoredAsync("proj")).State);
    }

    [Fact]
    public async Task CullBusyIsAnExplicitChoice()
    {
        await UpAsync("proj");
        _activity.Set("proj", Idle(Now - TimeSpan.FromHours(5), kernels: 1, busy: 1));

        var decision = Assert.Single(await Culler(new IdleCullerOptions { CullBusy = true }).RunOnceAsync(Ct));

        Assert.True(decision.Culled);
        Assert.Equal("idle for 5h00m (1 kernel(s) busy)", decision.Reason);
        Assert.Single(_backend.Stops);
    }

    [Fact]
    public async Task RecentActivityIsNotCulled()
    {
        var w = await UpAsync("proj");
        _activity.Set("proj", Idle(Now - TimeSpan.FromMinutes(3), connections: 2));

        var decision = Assert.Single(await Culler().RunOnceAsync(Ct));

        Assert.Equal(new CullDecision(Owner, "proj", false, "active 3m ago"), decision);
        Assert.Empty(_backend.Stops);
        Assert.True(_backend.IsRunning(w.Id));
    }

    [Fact]
    public async Task AServerThatDoesNotAnswerIsLeftToReconciliation()
    {
        var w = await UpAsync("proj");
        _activity.Set("proj", null);

        var decision = Assert.Single(await Culler(new IdleCullerOptions { IdleTimeout = TimeSpan.Zero }).RunOnceAsync(Ct));

        Assert.False(decision.Culled);
        Assert.StartsWith("no answer", decision.Reason, StringComparison.Ordinal);
        Assert.Empty(_backend.Stops);
        Assert.Equal(WorkspaceState.Running, (await StoredAsync("proj")).State);
        Assert.True(_backend.IsRunning(w.Id));
    }

    [Fact]
    public async Task OnlyRunningWorkspacesAreAsked()
    {
        await UpAsync("running");
        await UpAsync("stopped");
        await _manager.StopAsync(Owner, "stopped", null, Ct);
        _activity.Set("running", Idle(Now));

        var decision = Assert.Single(await Culler().RunOnceAsync(Ct));

        Assert.Equal("running", decision.Name);
        Assert.Equal(["running"], _activity.Asked.Select(a => a.Name));
    }

    [Fact]
    public async Task OneWorkspaceThrowingDoesNotStopTheOthers()
    {
        await UpAsync("a");
        await UpAsync("b");
        await UpAsync("c");
        _activity.Set("a", Idle(Now - TimeSpan.FromHours(2)));
        _activity.Throw("b", new HttpRequestException("/user/alice/b/api/status answered 500 Internal Server Error"));
        _activity.Set("c", Idle(Now - TimeSpan.FromHours(2)));

        var decisions = await Culler().RunOnceAsync(Ct);

        Assert.Equal(["a", "b", "c"], decisions.Select(d => d.Name));
        Assert.True(decisions[0].Culled);
        Assert.False(decisions[1].Culled);
        Assert.Equal("error: /user/alice/b/api/status answered 500 Internal Server Error", decisions[1].Reason);
        Assert.True(decisions[2].Culled);
        Assert.Equal(WorkspaceState.Running, (await StoredAsync("b")).State);
        Assert.Equal(WorkspaceState.Stopped, (await StoredAsync("c")).State);
    }

    [Fact]
    public async Task AWorkspaceDeletedMidPassIsAnErrorNotACrash()
    {
        await UpAsync("gone");
        await UpAsync("kept");
        _activity.Set("gone", Idle(Now - TimeSpan.FromHours(2)));
        _activity.Set("kept", Idle(Now - TimeSpan.FromHours(2)));
        _activity.OnAsk = name =>
        {
            if (name == "gone")
            {
                _manager.DeleteAsync(Owner, "gone", deleteHome: false, null, Ct).GetAwaiter().GetResult();
            }
        };

        var decisions = await Culler(new IdleCullerOptions { Concurrency = 1 }).RunOnceAsync(Ct);

        Assert.False(decisions.Single(d => d.Name == "gone").Culled);
        Assert.StartsWith("error: no workspace 'gone'", decisions.Single(d => d.Name == "gone").Reason, StringComparison.Ordinal);
        Assert.True(decisions.Single(d => d.Name == "kept").Culled);
    }

    [Fact]
    public async Task RunAsyncPassesEveryIntervalSurvivesFailuresAndStopsOnCancellation()
    {
        var w = await UpAsync("proj");
        _activity.Throw("proj", new InvalidOperationException("boom"));
        var passes = Channel.CreateUnbounded<CullPass>();
        var interval = TimeSpan.FromMinutes(1);
        var culler = Culler(new IdleCullerOptions { Interval = interval }, p =>
        {
            passes.Writer.TryWrite(p);
            throw new InvalidOperationException("a failing observer is ignored");
        });
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(Ct);

        var run = culler.RunAsync(cts.Token);

        var first = await passes.Reader.ReadAsync(Ct);
        Assert.Null(first.Error);
        Assert.Equal("error: boom", Assert.Single(first.Decisions).Reason);
        Assert.Equal(Now, first.At);

        // The next pass comes one interval later (fake time): the failure did not stop the loop.
        await _time.WaitForTimerAsync(interval, Ct);
        Assert.False(passes.Reader.TryRead(out _));
        _activity.Set("proj", Idle(Now - TimeSpan.FromHours(2)));
        _time.Advance(interval);
        var second = await passes.Reader.ReadAsync(Ct);
        Assert.Equal(new CullDecision(Owner, "proj", true, "idle for 2h01m"), Assert.Single(second.Decisions));
        Assert.Equal(w.Id, Assert.Single(_backend.Stops).Id);

        // A pass that cannot even list the workspaces is reported and the loop goes on.
        _cullerStore.FailLists = true;
        await _time.WaitForTimerAsync(interval, Ct);
        _time.Advance(interval);
        var third = await passes.Reader.ReadAsync(Ct);
        Assert.IsType<InvalidOperationException>(third.Error);
        Assert.Empty(third.Decisions);

        await _time.WaitForTimerAsync(interval, Ct);
        Assert.False(run.IsCompleted);
        await cts.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => run);
    }

    [Fact]
    public void OptionsThatWouldSpinOrNeverCullAreRefused()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => Culler(new IdleCullerOptions { Interval = TimeSpan.Zero }));
        Assert.Throws<ArgumentOutOfRangeException>(() => Culler(new IdleCullerOptions { IdleTimeout = TimeSpan.FromSeconds(-1) }));
    }

    [Theory]
    [InlineData(0, "0s")]
    [InlineData(12, "12s")]
    [InlineData(59, "59s")]
    [InlineData(60, "1m")]
    [InlineData(3 * 60 + 59, "3m")]
    [InlineData(3600, "1h00m")]
    [InlineData(3600 + 2 * 60 + 30, "1h02m")]
    [InlineData(3 * 86400, "72h00m")]
    [InlineData(-5, "0s")]
    public void AgesReadLikeAPersonWouldWriteThem(int seconds, string expected) =>
        Assert.Equal(expected, IdleCuller.Age(TimeSpan.FromSeconds(seconds)));
}

/// <summary>Answers per workspace name: a report, null (no answer) or an exception. Unknown names: no answer.</summary>
internal sealed class FakeActivityClient : IJupyterActivityClient
{
    private readonly ConcurrentDictionary<string, Func<JupyterActivity?>> _byName = new(StringComparer.Ordinal);

    public ConcurrentQueue<(string Name, string? Endpoint, string Token)> Asked { get; } = new();

    /// <summary>Runs on every call with the workspace's name, before it answers.</summary>
    public Action<string>? OnAsk { get; set; }

    public void Set(string name, JupyterActivity? report) => _byName[name] = () => report;

    public void Throw(string name, Exception ex) => _byName[name] = () => throw ex;

    public Task<JupyterActivity?> GetAsync(Workspace w, CancellationToken ct)
    {
        ct.ThrowIfCancellationRequested();
        Asked.Enqueue((w.Name, w.Endpoint, w.Token));
        OnAsk?.Invoke(w.Name);
        return Task.FromResult(_byName.TryGetValue(w.Name, out var answer) ? answer() : null);
    }
}

/// <summary>A <see cref="FakeTimeProvider"/> that tells when a timer of a given period is set (a Task.Delay started).</summary>
internal sealed class TimerWatchingTimeProvider(DateTimeOffset start) : FakeTimeProvider(start)
{
    private readonly Channel<TimeSpan> _timers = Channel.CreateUnbounded<TimeSpan>();

    public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period)
    {
        var timer = base.CreateTimer(callback, state, dueTime, period);
        _timers.Writer.TryWrite(dueTime);
        return timer;
    }

    /// <summary>Waits until a timer due after <paramref name="dueTime"/> has been created since the last wait.</summary>
    public async Task WaitForTimerAsync(TimeSpan dueTime, CancellationToken ct)
    {
        while (await _timers.Reader.ReadAsync(ct) != dueTime)
        {
        }
    }
}

/// <summary>The culler's view of the store, whose listing can be made to fail.</summary>
internal sealed class FlakyStore(IWorkspaceStore inner) : DelegatingWorkspaceStore(inner)
{
    public bool FailLists { get; set; }

    public override Task<IReadOnlyList<Workspace>> ListAsync(string? owner, CancellationToken ct) =>
        FailLists ? throw new InvalidOperationException("database is locked") : Inner.ListAsync(owner, ct);
}
