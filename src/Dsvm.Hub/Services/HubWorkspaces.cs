using Dsvm.Core;
using Dsvm.Core.Sizes;
using Dsvm.Core.Workspaces;
using Dsvm.Hub.Data;
using Microsoft.Extensions.Logging;

namespace Dsvm.Hub.Services;

/// <summary>
/// The hub's use of the lifecycle engine: quotas, the global start limit, starts that run in the background
/// (the API answers 202 at once), events for each step, and route updates.
/// </summary>
public sealed partial class HubWorkspaces(
    WorkspaceManager manager,
    IWorkspaceStore store,
    IEnvironmentCatalog environments,
    WorkspaceEvents events,
    RouteTable routes,
    HubOptions options,
    TimeProvider time,
    ILogger<HubWorkspaces> logger)
{
    private int _startsInFlight;
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, Task> _background = new(StringComparer.Ordinal);

    public SizeCatalog Sizes => manager.Sizes;

    public int StartsInFlight => Volatile.Read(ref _startsInFlight);

    public Task<IReadOnlyList<Workspace>> ListAsync(string? owner, CancellationToken ct) => manager.ListAsync(owner, ct);

    public async Task<Workspace> GetAsync(string owner, string name, CancellationToken ct) => await manager.GetAsync(owner, name, ct);

    /// <summary>Checks everything that can be checked, then starts in the background and returns the pending record.</summary>
    public async Task<Workspace> BeginStartAsync(HubUser user, string name, string environment, string sizeName, CancellationToken ct)
    {
        WorkspaceNames.Validate(name);
        var size = manager.Sizes.Get(sizeName);
        var env = (await environments.ListAsync(ct)).FirstOrDefault(e => e.Name == environment)
            ?? throw new NotFoundException($"unknown environment '{environment}' (see /api/v1/environments)");
        var existing = await store.FindAsync(user.Name, name, ct);
        await CheckQuotaAsync(user, size, existing, ct);
        await manager.CheckStartableAsync(env.Name, env.Gpu, size, ct);
        var request = new CreateWorkspaceRequest { Name = name, Owner = user.Name, Environment = env.Name, Image = env.Image, GpuMode = env.Gpu, Size = size.Name };
        EnterStart();
        Publish(user.Name, name, WorkspaceState.Pending, $"starting {name} ({env.Name}, {size.Name})");
        RunInBackground(user.Name, name, async () =>
        {
            try
            {
                var w = await manager.UpAsync(request, Progress(user.Name, name), CancellationToken.None);
                routes.Update(w);
                Publish(w.Owner, w.Name, w.State, "ready");
            }
            finally
            {
                LeaveStart();
            }
        });
        // The record exists once the manager has taken the lock; answer with it (or a pending stand-in).
        return await store.FindAsync(user.Name, name, ct) ?? Pending(user.Name, name, env, size);
    }

    public async Task<Workspace> BeginRestartAsync(HubUser user, string owner, string name, string? newSize, CancellationToken ct)
    {
        var w = await manager.GetAsync(owner, name, ct);
        var size = manager.Sizes.Get(newSize ?? w.Size);
        var env = (await environments.ListAsync(ct)).FirstOrDefault(e => e.Name == w.Environment);
        var gpu = env?.Gpu ?? Dsvm.Core.Specs.GpuMode.None;
        if (owner == user.Name)
        {
            await CheckQuotaAsync(user, size, w, ct);
        }

        await manager.CheckStartableAsync(w.Environment, gpu, size, ct);
        EnterStart();
        Publish(owner, name, WorkspaceState.Starting, newSize is null ? $"starting {name}" : $"resizing {name} to {size.Name}");
        RunInBackground(owner, name, async () =>
        {
            try
            {
                routes.Remove(owner, name);
                var result = newSize is null
                    ? await manager.StartAsync(owner, name, gpu, Progress(owner, name), CancellationToken.None)
                    : await manager.ResizeAsync(owner, name, size.Name, gpu, Progress(owner, name), CancellationToken.None);
                routes.Update(result);
                Publish(owner, name, result.State, result.State == WorkspaceState.Running ? "ready" : $"size {result.Size}");
            }
            finally
            {
                LeaveStart();
            }
        });
        return await manager.GetAsync(owner, name, ct);
    }

    public async Task<Workspace> StopAsync(string owner, string name, CancellationToken ct)
    {
        routes.Remove(owner, name);
        var w = await manager.StopAsync(owner, name, Progress(owner, name), ct);
        Publish(owner, name, w.State, "stopped; home kept");
        return w;
    }

    public async Task DeleteAsync(string owner, string name, bool deleteHome, CancellationToken ct)
    {
        routes.Remove(owner, name);
        await manager.DeleteAsync(owner, name, deleteHome, Progress(owner, name), ct);
        Publish(owner, name, WorkspaceState.Stopped, deleteHome ? "deleted with its home" : "deleted; home kept");
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

    private void RunInBackground(string owner, string name, Func<Task> work)
    {
        var key = $"{owner}/{name}";
        var task = Task.Run(async () =>
        {
            try
            {
                await work();
            }
            catch (DsvmException ex)
            {
                LogStartFailed(owner, name, ex.Message.Split('\n')[0]);
                Publish(owner, name, WorkspaceState.Failed, ex.Message);
                throw;
            }
            catch (Exception ex)
            {
                LogStartCrashed(ex, owner, name);
                Publish(owner, name, WorkspaceState.Failed, "internal error; see the hub's log");
                throw;
            }
        });
        _background[key] = task;
    }

    private void EnterStart()
    {
        if (Interlocked.Increment(ref _startsInFlight) > options.MaxConcurrentStarts)
        {
            Interlocked.Decrement(ref _startsInFlight);
            throw new TooManyRequestsException($"{options.MaxConcurrentStarts} workspaces are starting already; try again shortly", TimeSpan.FromSeconds(5));
        }
    }

    private void LeaveStart() => Interlocked.Decrement(ref _startsInFlight);

    private async Task CheckQuotaAsync(HubUser user, MachineSize size, Workspace? existing, CancellationToken ct)
    {
        var mine = (await store.ListAsync(user.Name, ct)).Where(w => w.Id != existing?.Id).ToList();
        var active = mine.Where(w => w.State is WorkspaceState.Running or WorkspaceState.Starting or WorkspaceState.Pending).ToList();
        var q = user.Quota;
        if (existing is null && q.MaxWorkspaces is { } maxWs && mine.Count + 1 > maxWs)
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

    private Workspace Pending(string owner, string name, HubEnvironment env, MachineSize size) => new()
    {
        Id = "", Name = name, Owner = owner, Environment = env.Name, Image = env.Image, Size = size.Name, Backend = manager.Backend.Name,
        HomeVolume = "", Token = "", State = WorkspaceState.Pending, CreatedAt = time.GetUtcNow(), UpdatedAt = time.GetUtcNow(),
    };

    private void Publish(string owner, string name, WorkspaceState state, string message) =>
        events.Publish(new WorkspaceEvent(owner, name, state, message, time.GetUtcNow()));

    private ProgressSink Progress(string owner, string name) => new(this, owner, name);

    private sealed class ProgressSink(HubWorkspaces hub, string owner, string name) : IProgress<WorkspaceProgress>
    {
        public void Report(WorkspaceProgress value) => hub.Publish(owner, name, WorkspaceState.Starting, value.Message);
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "workspace {Owner}/{Name} failed: {Reason}")]
    private partial void LogStartFailed(string owner, string name, string reason);

    [LoggerMessage(Level = LogLevel.Error, Message = "workspace {Owner}/{Name}: unexpected error")]
    private partial void LogStartCrashed(Exception ex, string owner, string name);
}
