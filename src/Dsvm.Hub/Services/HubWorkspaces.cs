using Dsvm.Core;
using Dsvm.Core.Sizes;
using Dsvm.Core.Workspaces;
using Dsvm.Hub.Data;
using Microsoft.Extensions.Logging;

namespace Dsvm.Hub.Services;

/// <summary>
/// The hub's use of the lifecycle engine: quotas, the global start limit, and starts that run in the background (the
/// API answers 202 at once). What happens to each workspace is published by the manager
/// (<see cref="WorkspaceNotifications"/>), which the routes and the events stream follow; this class publishes only
/// what the manager cannot know (a start resumed after a restart, a start that failed before it wrote anything).
/// </summary>
public sealed partial class HubWorkspaces : IDisposable
{
    private readonly WorkspaceManager manager;
    private readonly IWorkspaceStore store;
    private readonly IEnvironmentCatalog environments;
    private readonly WorkspaceNotifications notifications;
    private readonly HubOptions options;
    private readonly ILogger<HubWorkspaces> logger;
    private readonly IDisposable _subscription;
    private int _startsInFlight;
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, Task> _background = new(StringComparer.Ordinal);

    // Starts the API has accepted (202) whose background work has not finished: until it has, the record may not
    // exist yet (or still say "stopped"), so reads show these and quota checks count them.
    private readonly System.Collections.Concurrent.ConcurrentDictionary<(string Owner, string Name), Workspace> _accepted = new();

    // Check-then-accept runs one at a time per owner, so concurrent requests cannot all pass the same quota check.
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, SemaphoreSlim> _ownerGates = new(StringComparer.Ordinal);

    public HubWorkspaces(WorkspaceManager manager, IWorkspaceStore store, IEnvironmentCatalog environments, HubOptions options, ILogger<HubWorkspaces> logger)
    {
        this.manager = manager;
        this.store = store;
        this.environments = environments;
        this.options = options;
        this.logger = logger;
        notifications = manager.Notifications;
        // A start's outcome, once written, is what reads show: the acceptance stops overlaying the record at that
        // write, before anyone told of it can ask (the background task's own cleanup comes later).
        _subscription = notifications.Subscribe(c =>
        {
            if (c.Record is { State: WorkspaceState.Running or WorkspaceState.Failed } w && _accepted.TryGetValue((w.Owner, w.Name), out var a))
            {
                Forget(a);
            }
        });
    }

    public void Dispose() => _subscription.Dispose();

    public SizeCatalog Sizes => manager.Sizes;

    public int StartsInFlight => Volatile.Read(ref _startsInFlight);

    /// <summary>
    /// The records as the manager keeps them: no engine call per request (a list of 200 was 200 engine inspects). The
    /// manager writes every change it makes; drift behind its back (a container that died) is written by the reconcile
    /// loop (<see cref="HubOptions.ReconcileInterval"/>) and shows in the list from then on.
    /// </summary>
    public async Task<IReadOnlyList<Workspace>> ListAsync(string? owner, CancellationToken ct)
    {
        var list = (await store.ListAsync(owner, ct)).Select(Overlay).ToList();
        list.AddRange(_accepted.Values.Where(a => (owner is null || a.Owner == owner) && !list.Any(w => w.Owner == a.Owner && w.Name == a.Name)));
        return list.OrderBy(w => w.Owner, StringComparer.Ordinal).ThenBy(w => w.Name, StringComparer.Ordinal).ToList();
    }

    public async Task<Workspace> GetAsync(string owner, string name, CancellationToken ct) =>
        await store.FindAsync(owner, name, ct) is { } w
            ? Overlay(w)
            : _accepted.TryGetValue((owner, name), out var accepted) ? accepted : await manager.GetAsync(owner, name, ct);

    /// <summary>While an accepted start is under way, a record that still says stopped (or failed) shows the start's state.</summary>
    private Workspace Overlay(Workspace w) =>
        w.State is WorkspaceState.Stopped or WorkspaceState.Stopping or WorkspaceState.Failed && _accepted.TryGetValue((w.Owner, w.Name), out var a)
            ? w with { State = a.State, Size = a.Size, LastError = a.State == WorkspaceState.Stopped ? w.LastError : null }
            : w;

    /// <summary>Checks everything that can be checked, then starts in the background and returns the pending record.</summary>
    public async Task<Workspace> BeginStartAsync(HubUser user, string name, string environment, string sizeName, CancellationToken ct)
    {
        WorkspaceNames.Validate(name);
        var size = manager.Sizes.Get(sizeName);
        var env = (await environments.ListAsync(ct)).FirstOrDefault(e => e.Name == environment)
            ?? throw new NotFoundException($"unknown environment '{environment}' (see /api/v1/environments)");
        var request = new CreateWorkspaceRequest { Name = name, Owner = user.Name, OwnerId = user.Id, Environment = env.Name, Image = env.Image, GpuMode = env.Gpu, Size = size.Name };
        Workspace accepted;
        Workspace? existing;
        var gate = _ownerGates.GetOrAdd(user.Name, _ => new SemaphoreSlim(1, 1));
        await gate.WaitAsync(ct);
        try
        {
            existing = await store.FindAsync(user.Name, name, ct);
            if (existing is not null && (existing.Environment != env.Name || existing.Size != size.Name))
            {
                // The engine would refuse this in the background, after a 202: refuse it now.
                throw new ConflictException(existing.Environment != env.Name
                    ? $"workspace '{name}' already exists with environment '{existing.Environment}'; delete it first or pick another name"
                    : $"workspace '{name}' exists with size '{existing.Size}'; resize it instead");
            }

            await CheckQuotaAsync(user, size, name, isNew: existing is null && !_accepted.ContainsKey((user.Name, name)), ct);
            await manager.CheckStartableAsync(env.Name, env.Gpu, size, ct);
            EnterStart();
            try
            {
                // Persisted before the 202: a hub killed now leaves a Pending record that reconcile fails (or the
                // background start below finishes), never a client whose accepted workspace is a 404.
                accepted = existing is null
                    ? await manager.AcceptAsync(request, ct)
                    : existing with { State = WorkspaceState.Starting, LastError = null };
            }
            catch
            {
                LeaveStart();
                throw;
            }

            _accepted[(user.Name, name)] = accepted;
            FaultPoints.Hit("hub.after-accept");
        }
        finally
        {
            gate.Release();
        }

        if (existing is not null)
        {
            // A new record was published as it was written; a start of an existing one is published from here on.
            notifications.Message(user.Name, name, WorkspaceState.Pending, $"starting {name} ({env.Name}, {size.Name})");
        }

        RunInBackground(accepted, () => manager.UpAsync(request, null, CancellationToken.None));
        return await GetAsync(user.Name, name, ct);
    }

    /// <summary>
    /// Takes over the starts that a previous hub accepted (202) and died before finishing: each Pending record within
    /// its start deadline, with no start under way here, starts again in the background. Past the deadline, reconcile
    /// fails it instead (the user may have given up). Returns how many were resumed.
    /// </summary>
    public async Task<int> ResumeAcceptedAsync(CancellationToken ct)
    {
        var resumed = 0;
        foreach (var w in await store.ListAsync(null, ct))
        {
            if (w.State != WorkspaceState.Pending || !manager.IsWithinStartDeadline(w))
            {
                continue;
            }

            var env = (await environments.ListAsync(ct)).FirstOrDefault(e => e.Name == w.Environment);
            if (env is null)
            {
                // No longer offered: reconcile fails it at its deadline.
                continue;
            }

            var gate = _ownerGates.GetOrAdd(w.Owner, _ => new SemaphoreSlim(1, 1));
            await gate.WaitAsync(ct);
            try
            {
                if (_accepted.ContainsKey((w.Owner, w.Name)) || StartsInFlight >= options.MaxConcurrentStarts)
                {
                    // Under way here already; or no room now: the next reconcile tries again.
                    continue;
                }

                EnterStart();
                _accepted[(w.Owner, w.Name)] = w;
            }
            finally
            {
                gate.Release();
            }

            var request = new CreateWorkspaceRequest
            {
                Name = w.Name, Owner = w.Owner, OwnerId = w.OwnerId, Environment = env.Name, Image = env.Image, GpuMode = env.Gpu, Size = w.Size,
                Backend = w.Backend,
            };
            LogResumed(w.Owner, w.Name);
            notifications.Message(w.Owner, w.Name, WorkspaceState.Pending, $"resuming the start of {w.Name} that the hub accepted before it restarted");
            RunInBackground(w, () => manager.UpAsync(request, null, CancellationToken.None));
            resumed++;
        }

        return resumed;
    }

    public async Task<Workspace> BeginRestartAsync(HubUser user, string owner, string name, string? newSize, CancellationToken ct)
    {
        var size = manager.Sizes.Get(newSize ?? (await manager.GetAsync(owner, name, ct)).Size);
        Workspace accepted;
        Dsvm.Core.Specs.GpuMode gpu;
        var gate = _ownerGates.GetOrAdd(owner, _ => new SemaphoreSlim(1, 1));
        await gate.WaitAsync(ct);
        try
        {
            var w = await manager.GetAsync(owner, name, ct);
            var env = (await environments.ListAsync(ct)).FirstOrDefault(e => e.Name == w.Environment);
            gpu = env?.Gpu ?? Dsvm.Core.Specs.GpuMode.None;
            if (owner == user.Name)
            {
                await CheckQuotaAsync(user, size, name, isNew: false, ct);
            }

            await manager.CheckStartableAsync(w.Environment, gpu, size, ct);
            EnterStart();
            // A resize of a workspace that is not running only changes its size.
            var starts = newSize is null || w.State == WorkspaceState.Running;
            accepted = w with { State = starts ? WorkspaceState.Starting : w.State, Size = size.Name, LastError = starts ? null : w.LastError };
            _accepted[(owner, name)] = accepted;
        }
        finally
        {
            gate.Release();
        }

        notifications.Message(owner, name, WorkspaceState.Starting, newSize is null ? $"starting {name}" : $"resizing {name} to {size.Name}");
        RunInBackground(accepted, () => newSize is null
            ? manager.StartAsync(owner, name, gpu, null, CancellationToken.None)
            : manager.ResizeAsync(owner, name, size.Name, gpu, null, CancellationToken.None));
        return await GetAsync(owner, name, ct);
    }

    public Task<Workspace> StopAsync(string owner, string name, CancellationToken ct) => manager.StopAsync(owner, name, null, ct);

    public Task DeleteAsync(string owner, string name, bool deleteHome, CancellationToken ct) => manager.DeleteAsync(owner, name, deleteHome, null, ct);

    /// <summary>
    /// Before a user is deleted: their workspaces stop and go (starts under way finish first), their homes stay as
    /// orphaned homes for an admin to reassign or purge (or are purged now with <paramref name="purgeHomes"/>).
    /// </summary>
    public async Task<int> RemoveUserAsync(HubUser user, bool purgeHomes, CancellationToken ct)
    {
        var mine = await store.ListAsync(user.Name, ct);
        foreach (var w in mine)
        {
            await WaitAsync(w.Owner, w.Name);
        }

        var removed = await manager.RemoveOwnerAsync(user.Name, user.Id, ct);

        if (purgeHomes)
        {
            foreach (var h in await store.ListHomesAsync(user.Id, ct))
            {
                await manager.PurgeHomeAsync(h.Id, ct);
            }
        }

        return removed;
    }

    /// <summary>Waits for background work on one workspace (tests, and <c>?wait=true</c>).</summary>
    public async Task WaitAsync(string owner, string name)
    {
        if (_background.TryGetValue($"{owner}/{name}", out var task))
        {
            try
            {
                await task;
            }
            catch (DsvmException)
            {
                // Reported through the record and the events.
            }
        }
    }

    /// <summary>
    /// Runs an accepted start. Its outcome is published by the manager as it writes it; a failure before the manager
    /// wrote one (the engine unreachable, a conflict) is published from here, so the client is told either way.
    /// </summary>
    private void RunInBackground(Workspace accepted, Func<Task<Workspace>> work)
    {
        var (owner, name) = (accepted.Owner, accepted.Name);
        var task = Task.Run(async () =>
        {
            try
            {
                await work();
            }
            catch (Exception ex)
            {
                Forget(accepted);
                if (ex is DsvmException)
                {
                    LogStartFailed(owner, name, ex.Message.Split('\n')[0]);
                }
                else
                {
                    LogStartCrashed(ex, owner, name);
                }

                if (await RecordedFailureAsync(accepted) is not true)
                {
                    notifications.Message(owner, name, WorkspaceState.Failed, ex is DsvmException ? ex.Message : "internal error; see the hub's log");
                }

                throw;
            }
            finally
            {
                Forget(accepted);
                LeaveStart();
            }
        });
        _background[$"{owner}/{name}"] = task;
    }

    /// <summary>The last lines of a workspace server's log, with its Jupyter token (if printed) masked.</summary>
    public async Task<string> LogsAsync(string owner, string name, int tail, CancellationToken ct)
    {
        if (tail is < 1 or > MaxLogLines)
        {
            throw new UsageException($"tail must be between 1 and {MaxLogLines} lines");
        }

        var w = await manager.GetAsync(owner, name, ct);
        var text = await manager.BackendOf(w).GetLogsAsync(w.Handle, tail, ct);
        return w.Token.Length > 0 ? text.Replace(w.Token, "<token>", StringComparison.Ordinal) : text;
    }

    public const int MaxLogLines = 10_000;

    /// <summary>Runs a non-interactive command in a running workspace through the backend (501 when it cannot exec).</summary>
    public async Task<WorkspaceExecResult> ExecAsync(string owner, string name, IReadOnlyList<string> command, TimeSpan? timeout, CancellationToken ct)
    {
        if (command.Count == 0 || string.IsNullOrEmpty(command[0]))
        {
            throw new UsageException("exec needs a command: {\"command\": [\"program\", \"arg\", ...]}");
        }

        if (command.Count > 1000 || command.Any(a => a is null || a.Contains('\0', StringComparison.Ordinal)))
        {
            throw new UsageException("exec takes at most 1000 arguments, none with a NUL character");
        }

        var limit = timeout ?? options.ExecDefaultTimeout;
        if (limit <= TimeSpan.Zero || limit > options.ExecMaxTimeout)
        {
            throw new UsageException($"the exec timeout must be between 1 and {options.ExecMaxTimeout.TotalSeconds:0} seconds");
        }

        var w = await manager.GetAsync(owner, name, ct);
        if (manager.BackendOf(w) is not IWorkspaceExec exec)
        {
            throw new BackendNotSupportedException($"the '{w.Backend}' backend cannot run commands in workspaces (exec)");
        }

        if (w.State != WorkspaceState.Running)
        {
            throw new ConflictException($"workspace '{name}' is {w.State.ToString().ToLowerInvariant()}; start it first");
        }

        var result = await exec.ExecAsync(w.Handle, new WorkspaceExecRequest { Command = command, Timeout = limit, OutputLimitBytes = options.ExecOutputLimitBytes }, ct);
        LogExec(owner, name, command[0], result.ExitCode);
        return result;
    }

    /// <summary>
    /// Whether the manager wrote the start's failure (and so published it, with its message): the record is Failed at a
    /// later version than the accepted one. Null when the record cannot be read.
    /// </summary>
    private async Task<bool?> RecordedFailureAsync(Workspace accepted)
    {
        try
        {
            return await store.FindAsync(accepted.Owner, accepted.Name, CancellationToken.None) is { State: WorkspaceState.Failed } w && w.Version > accepted.Version;
        }
        catch (DsvmException)
        {
            return null;
        }
    }

    /// <summary>Drops this acceptance (not a later one for the same workspace).</summary>
    private void Forget(Workspace accepted) =>
        _accepted.TryRemove(new KeyValuePair<(string, string), Workspace>((accepted.Owner, accepted.Name), accepted));

    private void EnterStart()
    {
        if (Interlocked.Increment(ref _startsInFlight) > options.MaxConcurrentStarts)
        {
            Interlocked.Decrement(ref _startsInFlight);
            throw new TooManyRequestsException($"{options.MaxConcurrentStarts} workspaces are starting already; try again shortly", TimeSpan.FromSeconds(5));
        }
    }

    private void LeaveStart() => Interlocked.Decrement(ref _startsInFlight);

    private async Task CheckQuotaAsync(HubUser user, MachineSize size, string name, bool isNew, CancellationToken ct)
    {
        // The user's other workspaces: records, with accepted starts counted as starting (with their new size).
        var accepted = _accepted.Values.Where(a => a.Owner == user.Name && a.Name != name).ToList();
        var mine = (await store.ListAsync(user.Name, ct))
            .Where(w => w.Name != name && !accepted.Any(a => a.Name == w.Name))
            .Concat(accepted)
            .ToList();
        var active = mine.Where(w => w.State is WorkspaceState.Running or WorkspaceState.Starting or WorkspaceState.Pending).ToList();
        var q = user.Quota;
        if (isNew && q.MaxWorkspaces is { } maxWs && mine.Count + 1 > maxWs)
        {
            throw new ForbiddenException($"quota: at most {maxWs} workspaces per user (you have {mine.Count}); delete one first");
        }

        var vcpus = active.Sum(w => manager.Sizes.Contains(w.Size) ? manager.Sizes.Get(w.Size).Vcpus : 0) + size.Vcpus;
        if (q.MaxVcpus is { } maxCpu && vcpus > maxCpu)
        {
            throw new ForbiddenException($"quota: at most {maxCpu:0.##} vCPUs running per user; this start would make {vcpus:0.##}");
        }

        var gpus = active.Sum(w => manager.Sizes.Contains(w.Size) ? manager.Sizes.Get(w.Size).Gpus : 0) + size.Gpus;
        if (q.MaxGpus is { } maxGpu && gpus > maxGpu)
        {
            throw new ForbiddenException($"quota: at most {maxGpu} GPUs running per user; this start would make {gpus}");
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "exec in {Owner}/{Name}: {Program} exited {ExitCode}")]
    private partial void LogExec(string owner, string name, string program, int exitCode);

    [LoggerMessage(Level = LogLevel.Information, Message = "workspace {Owner}/{Name}: resuming a start accepted before the hub restarted")]
    private partial void LogResumed(string owner, string name);

    [LoggerMessage(Level = LogLevel.Warning, Message = "workspace {Owner}/{Name} failed: {Reason}")]
    private partial void LogStartFailed(string owner, string name, string reason);

    [LoggerMessage(Level = LogLevel.Error, Message = "workspace {Owner}/{Name}: unexpected error")]
    private partial void LogStartCrashed(Exception ex, string owner, string name);
}
