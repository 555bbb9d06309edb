using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using System.Text.Json;
using Dsvm.Core.Sizes;
using Dsvm.Core.Workspaces;

namespace Dsvm.Core.Tests;

/// <summary>How <see cref="FakeBackend.StartAsync"/> behaves.</summary>
internal enum FakeStart
{
    /// <summary>The server process starts and keeps running.</summary>
    Succeed,

    /// <summary>StartAsync never returns (until its token is cancelled).</summary>
    Hang,

    /// <summary>StartAsync throws <see cref="FakeBackend.FailWith"/>.</summary>
    Fail,

    /// <summary>StartAsync returns, but the server exits at once (status: not running).</summary>
    Crash,
}

/// <summary>An in-memory backend that records every call.</summary>
internal sealed class FakeBackend : IWorkspaceBackend, IOrphanSweeper
{
    private readonly Lock _gate = new();
    private readonly Dictionary<string, bool> _running = new(StringComparer.Ordinal);
    private readonly Dictionary<string, Uri> _moved = new(StringComparer.Ordinal);
    private readonly Dictionary<string, DateTimeOffset> _startedAt = new(StringComparer.Ordinal);
    private int _containers;

    public string Name { get; init; } = "fake";

    public bool RunsOnThisHost { get; init; } = true;

    public FakeStart Mode { get; set; } = FakeStart.Succeed;

    public WorkspaceStartException FailWith { get; set; } = new(WorkspaceFailure.Image, "image 'demo:latest' is not in the local engine");

    /// <summary>Time each successful start takes (to widen races).</summary>
    public TimeSpan StartDelay { get; set; } = TimeSpan.Zero;

    public HostCapacity Capacity { get; set; } = new(8, 32L * 1024 * 1024 * 1024, 0);

    public string Logs { get; set; } = "";

    public string ExitDetail { get; set; } = "exited, exit code 1";

    public List<ManagedResource> Orphans { get; } = [];

    /// <summary>What <see cref="SweepOrphansAsync"/> reports removing (orphaned objects that are not workspaces).</summary>
    public List<string> Sweeps { get; } = [];

    public Task<IReadOnlyList<string>> SweepOrphansAsync(CancellationToken ct) => Task.FromResult<IReadOnlyList<string>>([.. Sweeps]);

    /// <summary>Runs as StartAsync begins (e.g. to cancel the caller mid-start).</summary>
    public Action? OnStart { get; set; }

    /// <summary>Runs inside GetStatusAsync, before it answers (another process acting meanwhile).</summary>
    public Func<Task>? OnStatus { get; set; }

    /// <summary>When set, every engine call throws it (the engine is unreachable).</summary>
    public Exception? Unreachable { get; set; }

    /// <summary>A server runs for <paramref name="id"/> that no record knows the handle of (a start killed after the engine call).</summary>
    public void RunOutside(string id, DateTimeOffset? startedAt = null)
    {
        lock (_gate)
        {
            _running[id] = true;
            if (startedAt is { } t)
            {
                _startedAt[id] = t;
            }
        }
    }

    public ConcurrentQueue<WorkspaceStartRequest> Starts { get; } = new();

    public ConcurrentQueue<WorkspaceHandle> Stops { get; } = new();

    public ConcurrentQueue<(WorkspaceHandle Handle, string HomeVolume, bool KeepHome)> Deletes { get; } = new();

    /// <summary>Every call in order: "start:ID", "stop:ID", "delete:ID", "status:ID", "logs:ID", "capacity", "list".</summary>
    public ConcurrentQueue<string> Calls { get; } = new();

    /// <summary>Calls that change something (start, stop, delete).</summary>
    public IEnumerable<string> Mutations => Calls.Where(c => c.StartsWith("start:", StringComparison.Ordinal)
        || c.StartsWith("stop:", StringComparison.Ordinal) || c.StartsWith("delete:", StringComparison.Ordinal));

    public bool IsRunning(string id)
    {
        lock (_gate)
        {
            return _running.TryGetValue(id, out var r) && r;
        }
    }

    /// <summary>The server stops behind OpenDSVM's back (a crash, <c>docker stop</c>).</summary>
    public void StopOutside(string id)
    {
        lock (_gate)
        {
            _running[id] = false;
        }
    }

    /// <summary>
    /// The server comes back behind OpenDSVM's back at another address (a swarm task replaced after a node or manager
    /// outage, a container restarted by its engine: a host port is picked anew).
    /// </summary>
    public void MoveOutside(string id, Uri endpoint)
    {
        lock (_gate)
        {
            _running[id] = true;
            _moved[id] = endpoint;
        }
    }

    public static Uri EndpointFor(string id) => new($"http://127.0.0.1:{40000 + (Math.Abs(StringComparer.Ordinal.GetHashCode(id)) % 20000)}/");

    public async Task<WorkspaceLaunch> StartAsync(WorkspaceStartRequest request, IProgress<WorkspaceProgress>? progress, CancellationToken ct)
    {
        ThrowIfUnreachable();
        Calls.Enqueue($"start:{request.Id}");
        Starts.Enqueue(request);
        OnStart?.Invoke();
        progress?.Report(new WorkspaceProgress("fake: starting"));
        switch (Mode)
        {
            case FakeStart.Hang:
                await Task.Delay(Timeout.Infinite, ct);
                break;
            case FakeStart.Fail:
                throw FailWith;
        }

        if (StartDelay > TimeSpan.Zero)
        {
            await Task.Delay(StartDelay, ct);
        }

        string container;
        lock (_gate)
        {
            container = $"c-{++_containers}";
            _running[request.Id] = Mode != FakeStart.Crash;
        }

        var state = JsonSerializer.SerializeToElement(new { container, name = $"dsvm-{request.Owner}-{request.Name}" });
        return new WorkspaceLaunch(new WorkspaceHandle(request.Id, Name, state), EndpointFor(request.Id));
    }

    private void ThrowIfUnreachable()
    {
        if (Unreachable is { } ex)
        {
            throw ex;
        }
    }

    public Task StopAsync(WorkspaceHandle handle, CancellationToken ct)
    {
        ThrowIfUnreachable();
        Calls.Enqueue($"stop:{handle.Id}");
        Stops.Enqueue(handle);
        lock (_gate)
        {
            _running.Remove(handle.Id);
        }

        return Task.CompletedTask;
    }

    public async Task<WorkspaceStatus> GetStatusAsync(WorkspaceHandle handle, CancellationToken ct)
    {
        ThrowIfUnreachable();
        Calls.Enqueue($"status:{handle.Id}");
        if (OnStatus is { } onStatus)
        {
            await onStatus();
        }

        // Like an engine, the handle names the object: an empty handle finds nothing (a label scan does).
        if (handle.State.ValueKind != JsonValueKind.Object || !handle.State.TryGetProperty("container", out _))
        {
            return new WorkspaceStatus(false, false, "container not found");
        }

        lock (_gate)
        {
            return _running.TryGetValue(handle.Id, out var running)
                ? running
                    ? new WorkspaceStatus(true, true, "running", _moved.GetValueOrDefault(handle.Id) ?? EndpointFor(handle.Id),
                        _startedAt.TryGetValue(handle.Id, out var since) ? since : null)
                    : new WorkspaceStatus(true, false, ExitDetail)
                : new WorkspaceStatus(false, false, "container not found");
        }
    }

    public Task DeleteAsync(WorkspaceHandle handle, string homeVolume, bool keepHome, CancellationToken ct)
    {
        ThrowIfUnreachable();
        Calls.Enqueue($"delete:{handle.Id}");
        Deletes.Enqueue((handle, homeVolume, keepHome));
        lock (_gate)
        {
            _running.Remove(handle.Id);
        }

        return Task.CompletedTask;
    }

    public Task<string> GetLogsAsync(WorkspaceHandle handle, int tailLines, CancellationToken ct)
    {
        Calls.Enqueue($"logs:{handle.Id}");
        return Task.FromResult(string.Join('\n', Logs.Split('\n').TakeLast(tailLines)));
    }

    public async IAsyncEnumerable<ManagedResource> ListManagedAsync([EnumeratorCancellation] CancellationToken ct)
    {
        ThrowIfUnreachable();
        Calls.Enqueue("list");
        List<(string Id, bool Running)> running;
        lock (_gate)
        {
            running = _running.Select(kv => (kv.Key, kv.Value)).ToList();
        }

        foreach (var (id, isRunning) in running)
        {
            await Task.Yield();
            yield return new ManagedResource(id, $"dsvm-{id}", isRunning, new WorkspaceHandle(id, Name, JsonSerializer.SerializeToElement(new { container = id })));
        }

        foreach (var orphan in Orphans)
        {
            yield return orphan;
        }
    }

    /// <summary>Home volumes that exist on this engine without a record (made by an earlier version).</summary>
    public HashSet<string> ExistingHomes { get; } = new(StringComparer.Ordinal);

    public Task<bool> HomeExistsAsync(string homeVolume, CancellationToken ct) => Task.FromResult(ExistingHomes.Contains(homeVolume));

    public Task<HostCapacity> GetCapacityAsync(CancellationToken ct)
    {
        Calls.Enqueue("capacity");
        return Task.FromResult(Capacity);
    }
}

/// <summary>Workspace records in a dictionary; thread-safe, copies nothing (records are immutable).</summary>
internal sealed class InMemoryWorkspaceStore : IWorkspaceStore
{
    private readonly ConcurrentDictionary<string, Workspace> _byId = new(StringComparer.Ordinal);

    /// <summary>Every saved version, in order.</summary>
    public ConcurrentQueue<Workspace> History { get; } = new();

    public IReadOnlyCollection<Workspace> All => _byId.Values.ToList();

    public Task<Workspace?> FindAsync(string owner, string name, CancellationToken ct) =>
        Task.FromResult(_byId.Values.FirstOrDefault(w => w.Owner == owner && w.Name == name));

    public Task<IReadOnlyList<Workspace>> ListAsync(string? owner, CancellationToken ct) =>
        Task.FromResult<IReadOnlyList<Workspace>>(_byId.Values.Where(w => owner is null || w.Owner == owner)
            .OrderBy(w => w.Owner, StringComparer.Ordinal).ThenBy(w => w.Name, StringComparer.Ordinal).ToList());

    private readonly Lock _writes = new();

    /// <summary>Like the EF store: version 0 inserts, any other version must match the stored one.</summary>
    public Task<Workspace> SaveAsync(Workspace workspace, CancellationToken ct)
    {
        ct.ThrowIfCancellationRequested();
        lock (_writes)
        {
            if (_byId.Values.Any(w => w.Id != workspace.Id && w.Owner == workspace.Owner && w.Name == workspace.Name))
            {
                throw new StaleWorkspaceException($"workspace '{workspace.Name}' exists already");
            }

            _byId.TryGetValue(workspace.Id, out var current);
            if ((current?.Version ?? 0) != workspace.Version)
            {
                throw new StaleWorkspaceException(current is null
                    ? $"workspace '{workspace.Name}' was deleted meanwhile"
                    : $"workspace '{workspace.Name}' was changed meanwhile");
            }

            var saved = workspace with { Version = workspace.Version + 1 };
            _byId[workspace.Id] = saved;
            History.Enqueue(saved);
            return Task.FromResult(saved);
        }
    }

    public Task DeleteAsync(Workspace workspace, CancellationToken ct)
    {
        lock (_writes)
        {
            if (_byId.TryGetValue(workspace.Id, out var current) && current.Version != workspace.Version)
            {
                throw new StaleWorkspaceException($"workspace '{workspace.Name}' was changed meanwhile");
            }

            _byId.TryRemove(workspace.Id, out _);
        }

        return Task.CompletedTask;
    }

    private readonly ConcurrentDictionary<string, Home> _homes = new(StringComparer.Ordinal);

    public IReadOnlyCollection<Home> Homes => _homes.Values.ToList();

    public Task<Home?> FindHomeAsync(string ownerId, string name, CancellationToken ct) =>
        Task.FromResult(_homes.Values.Where(h => h.OwnerId == ownerId && h.Name == name && h.OrphanedAt is null).OrderBy(h => h.Id, StringComparer.Ordinal).FirstOrDefault());

    public Task<Home?> GetHomeAsync(string homeId, CancellationToken ct) => Task.FromResult(_homes.GetValueOrDefault(homeId));

    public Task<IReadOnlyList<Home>> ListHomesAsync(string? ownerId, CancellationToken ct) =>
        Task.FromResult<IReadOnlyList<Home>>(_homes.Values.Where(h => ownerId is null || h.OwnerId == ownerId).OrderBy(h => h.Id, StringComparer.Ordinal).ToList());

    public Task SaveHomeAsync(Home home, CancellationToken ct)
    {
        _homes[home.Id] = home;
        return Task.CompletedTask;
    }

    public Task DeleteHomeAsync(string homeId, CancellationToken ct)
    {
        _homes.TryRemove(homeId, out _);
        return Task.CompletedTask;
    }
}

/// <summary>Answers "ready" from the <see cref="ReadyAfter"/>-th call on; never when it is null.</summary>
internal sealed class FakeProbe : IReadinessProbe
{
    private int _calls;

    public int? ReadyAfter { get; set; } = 1;

    public int Calls => Volatile.Read(ref _calls);

    public ConcurrentQueue<(Uri Endpoint, string BaseUrl, string Token)> Asked { get; } = new();

    /// <summary>Runs on every call with its number (1-based).</summary>
    public Action<int>? OnAsk { get; set; }

    public Task<bool> IsReadyAsync(Uri endpoint, string baseUrl, string token, CancellationToken ct)
    {
        ct.ThrowIfCancellationRequested();
        Asked.Enqueue((endpoint, baseUrl, token));
        var n = Interlocked.Increment(ref _calls);
        OnAsk?.Invoke(n);
        return Task.FromResult(ReadyAfter is { } after && n >= after);
    }
}

internal sealed class FakeGpuDetector : IGpuDetector
{
    public int Count { get; set; }

    public Task<IReadOnlyList<GpuInfo>> DetectAsync(CancellationToken ct) =>
        Task.FromResult<IReadOnlyList<GpuInfo>>(Enumerable.Range(0, Count)
            .Select(i => new GpuInfo(i, "Fake GPU", $"GPU-{i:0000}", 81559, "550.0")).ToList());
}

/// <summary>Collects progress messages synchronously (unlike <see cref="Progress{T}"/>).</summary>
internal sealed class ListProgress : IProgress<WorkspaceProgress>
{
    public ConcurrentQueue<string> Messages { get; } = new();

    public void Report(WorkspaceProgress value) => Messages.Enqueue(value.Message);
}
