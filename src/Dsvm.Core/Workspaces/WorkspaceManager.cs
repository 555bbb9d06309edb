using System.Security.Cryptography;
using System.Text.Json;
using Dsvm.Core.Sizes;
using Dsvm.Core.Specs;

namespace Dsvm.Core.Workspaces;

/// <summary>Tunables of the lifecycle engine.</summary>
public sealed record WorkspaceOptions
{
    /// <summary>How long a start may take before it is failed (readiness included).</summary>
    public TimeSpan StartTimeout { get; init; } = TimeSpan.FromSeconds(120);

    /// <summary>The first wait between readiness polls; each further wait is 1.5× the one before, up to <see cref="MaxPollInterval"/>.</summary>
    public TimeSpan PollInterval { get; init; } = TimeSpan.FromMilliseconds(50);

    /// <summary>
    /// The longest wait between readiness polls: a fast server is still seen within 50 ms, a slow boot is asked less
    /// often (each poll costs the hub and the engine CPU that booting servers lack when many start at once).
    /// </summary>
    public TimeSpan MaxPollInterval { get; init; } = TimeSpan.FromMilliseconds(250);

    /// <summary>Log lines quoted in a failure message.</summary>
    public int FailureLogLines { get; init; } = 15;
}

/// <summary>What <c>dsvm up</c> asks for.</summary>
public sealed record CreateWorkspaceRequest
{
    public required string Name { get; init; }
    public required string Owner { get; init; }

    /// <summary>The owner's immutable ID: homes belong to it (<see cref="WorkspaceIds.LocalOwnerId"/> for the CLI).</summary>
    public required string OwnerId { get; init; }

    public required string Environment { get; init; }
    public required string Image { get; init; }
    public required GpuMode GpuMode { get; init; }
    public string Size { get; init; } = SizeCatalog.DefaultSize;

    /// <summary>The backend to create it on; null: the one routed to for its size (see <see cref="WorkspaceBackends"/>).</summary>
    public string? Backend { get; init; }
}

/// <summary>Outcome of a reconciliation pass.</summary>
public sealed record ReconcileReport(IReadOnlyList<string> Repaired, IReadOnlyList<ManagedResource> Unknown);

/// <summary>
/// The lifecycle engine: validates requests, decides GPU use, persists every state change, starts through the
/// backend, waits for the server's own readiness with its token, and fails with the server's last log lines.
/// Operations on one workspace are serialised across processes by a lock file, so two concurrent commands cannot
/// corrupt it; records are reconciled with the engine's labels so outside changes show up.
/// </summary>
public sealed class WorkspaceManager(
    WorkspaceBackends backends,
    IWorkspaceStore store,
    SizeCatalog sizes,
    IGpuDetector gpus,
    IReadinessProbe probe,
    DsvmPaths paths,
    TimeProvider time,
    WorkspaceOptions? options = null,
    WorkspaceNotifications? notifications = null)
{
    private readonly WorkspaceOptions _options = options ?? new WorkspaceOptions();
    private readonly WorkspaceNotifications _notifications = notifications ?? new WorkspaceNotifications(time);

    /// <summary>A manager with one backend for everything.</summary>
    public WorkspaceManager(IWorkspaceBackend backend, IWorkspaceStore store, SizeCatalog sizes, IGpuDetector gpus, IReadinessProbe probe,
        DsvmPaths paths, TimeProvider time, WorkspaceOptions? options = null, WorkspaceNotifications? notifications = null)
        : this(WorkspaceBackends.Only(backend), store, sizes, gpus, probe, paths, time, options, notifications) { }

    /// <summary>The default backend.</summary>
    public IWorkspaceBackend Backend => backends.Default;

    public WorkspaceBackends Backends => backends;

    public SizeCatalog Sizes => sizes;

    /// <summary>Where every record this manager writes or deletes, and each step of a start, is published.</summary>
    public WorkspaceNotifications Notifications => _notifications;

    /// <summary>
    /// The per-workspace lock file. Keyed by owner and workspace name joined with '.', which no name may contain (both
    /// are validated here, so a name can neither collide with another pair nor leave the locks folder).
    /// </summary>
    private string LockPath(string owner, string name)
    {
        WorkspaceNames.Validate(owner, "owner name");
        WorkspaceNames.Validate(name);
        return Path.Combine(paths.Data, "locks", $"{owner}.{name}.lock");
    }

    private Task<FileGate> LockAsync(string owner, string name, IProgress<WorkspaceProgress>? progress, CancellationToken ct) =>
        FileGate.AcquireAsync(LockPath(owner, name), ct,
            () => progress?.Report(new WorkspaceProgress($"waiting: another command is working on {name}")));

    public async Task<Workspace> GetAsync(string owner, string name, CancellationToken ct) =>
        await store.FindAsync(owner, name, ct) ?? throw new NotFoundException($"no workspace '{name}' (see `dsvm ls`)");

    /// <summary>Throws the error a start would meet on GPU policy or capacity, before anything is recorded or started.</summary>
    public async Task CheckStartableAsync(string environment, GpuMode gpuMode, MachineSize size, CancellationToken ct)
    {
        var host = await CapacityAsync(backends.Get(backends.RouteOf(size)), ct);
        GpuPolicy.Decide(environment, gpuMode, size, host.Gpus);
        CheckCapacity(size, host, gpuMode);
    }

    /// <summary>Creates (or starts again) a workspace and waits until its Jupyter server answers.</summary>
    public async Task<Workspace> UpAsync(CreateWorkspaceRequest request, IProgress<WorkspaceProgress>? progress, CancellationToken ct)
    {
        WorkspaceNames.Validate(request.Name);
        WorkspaceNames.Validate(request.Owner, "owner name");
        if (!WorkspaceIds.IsValid(request.OwnerId))
        {
            throw new UsageException($"'{request.OwnerId}' is not a valid owner ID");
        }

        var size = sizes.Get(request.Size);
        await using var gate = await LockAsync(request.Owner, request.Name, progress, ct);
        var existing = await store.FindAsync(request.Owner, request.Name, ct);
        if (existing is not null)
        {
            if (existing.Environment != request.Environment)
            {
                throw new ConflictException(
                    $"workspace '{request.Name}' already exists with environment '{existing.Environment}'; `dsvm rm {request.Name}` first (its home is kept) or pick another --name");
            }

            if (request.Backend is { Length: > 0 } asked && asked != existing.Backend)
            {
                throw new ConflictException(
                    $"workspace '{request.Name}' already exists on backend '{existing.Backend}' (its home is there); `dsvm rm {request.Name} --delete-home` first or pick another --name");
            }

            if (existing.Size != size.Name)
            {
                throw new ConflictException($"workspace '{request.Name}' exists with size '{existing.Size}'; use `dsvm resize {request.Name} --size {size.Name}`");
            }

            existing = await RefreshLockedAsync(existing, new LabelScan(this), ct);
            return existing.State == WorkspaceState.Running ? existing : await StartLockedAsync(existing with { Image = request.Image }, request.GpuMode, size, progress, ct);
        }

        var workspace = await NewRecordLockedAsync(request, size, ct);
        FaultPoints.Hit("up.after-pending");
        return await StartLockedAsync(workspace, request.GpuMode, size, progress, ct);
    }

    /// <summary>
    /// Records a new workspace as Pending (checked as <see cref="UpAsync"/> checks it) without starting anything: the
    /// hub persists an accepted start before it answers 202. An existing record is returned as it is.
    /// </summary>
    public async Task<Workspace> AcceptAsync(CreateWorkspaceRequest request, CancellationToken ct)
    {
        WorkspaceNames.Validate(request.Name);
        WorkspaceNames.Validate(request.Owner, "owner name");
        if (!WorkspaceIds.IsValid(request.OwnerId))
        {
            throw new UsageException($"'{request.OwnerId}' is not a valid owner ID");
        }

        var size = sizes.Get(request.Size);
        // No lock needed (the answer must not wait for another command): the insert is versioned (version 0) and
        // (owner, name) is unique, so of two racing inserts one wins and the other finds its record.
        if (await store.FindAsync(request.Owner, request.Name, ct) is { } existing)
        {
            return existing;
        }

        try
        {
            return await NewRecordLockedAsync(request, size, ct);
        }
        catch (StaleWorkspaceException)
        {
            return await GetAsync(request.Owner, request.Name, ct);
        }
    }

    private async Task<Workspace> NewRecordLockedAsync(CreateWorkspaceRequest request, MachineSize size, CancellationToken ct)
    {
        // The owner's kept home of this name (found by owner ID: a reused user name never finds it) decides the
        // backend, since the home lives there.
        var home = await store.FindHomeAsync(request.OwnerId, request.Name, ct);
        if (home is not null && request.Backend is { Length: > 0 } wanted && wanted != home.Backend)
        {
            throw new ConflictException(
                $"the home of '{request.Name}' is on backend '{home.Backend}'; start it there, or delete that home first");
        }

        // Refuse what cannot start before anything is recorded or created.
        var backendName = home?.Backend ?? backends.Select(request.Backend, size);
        var host = await CapacityAsync(backends.Get(backendName), ct);
        GpuPolicy.Decide(request.Environment, request.GpuMode, size, host.Gpus);
        CheckCapacity(size, host, request.GpuMode);
        var now = time.GetUtcNow();
        if (home is null)
        {
            var homeId = WorkspaceIds.NewHomeId();
            home = new Home
            {
                Id = homeId, OwnerId = request.OwnerId, Owner = request.Owner, Name = request.Name, Backend = backendName,
                Volume = await LegacyLocalHomeAsync(request, backendName, ct) ?? WorkspaceIds.HomeObjectName(homeId), CreatedAt = now,
            };
            await store.SaveHomeAsync(home, ct);
        }

        var workspace = new Workspace
        {
            Id = WorkspaceIds.NewWorkspaceId(),
            Name = request.Name,
            Owner = request.Owner,
            OwnerId = request.OwnerId,
            Environment = request.Environment,
            Image = request.Image,
            Size = size.Name,
            Backend = backendName,
            HomeVolume = home.Volume,
            HomeId = home.Id,
            Token = NewToken(),
            State = WorkspaceState.Pending,
            CreatedAt = now,
            UpdatedAt = now,
        };
        return await SaveAsync(workspace, $"starting {request.Name} ({request.Environment}, {size.Name})", ct);
    }

    /// <summary>
    /// The CLI's upgrade path: a single-user install (owner <see cref="WorkspaceIds.LocalOwnerId"/>, the only owner
    /// there) kept homes as <c>dsvm-home-local-NAME</c> before IDs; such a home, if it still exists, is this name's.
    /// Never on the hub, where a user name is no identity (another user may have had the name).
    /// </summary>
    private async Task<string?> LegacyLocalHomeAsync(CreateWorkspaceRequest request, string backendName, CancellationToken ct)
    {
        if (request.OwnerId != WorkspaceIds.LocalOwnerId)
        {
            return null;
        }

        var legacy = $"dsvm-home-{request.Owner}-{request.Name}";
        return await backends.Get(backendName).HomeExistsAsync(legacy, ct) ? legacy : null;
    }

    /// <summary>Starts a stopped workspace, optionally with a new size (resize keeps the same home).</summary>
    public async Task<Workspace> StartAsync(string owner, string name, GpuMode gpuMode, IProgress<WorkspaceProgress>? progress, CancellationToken ct)
    {
        await using var gate = await LockAsync(owner, name, progress, ct);
        var workspace = await GetAsync(owner, name, ct);
        workspace = await RefreshLockedAsync(workspace, new LabelScan(this), ct);
        return workspace.State == WorkspaceState.Running
            ? workspace
            : await StartLockedAsync(workspace, gpuMode, sizes.Get(workspace.Size), progress, ct);
    }

    /// <summary>Stop, then start with the new size; the home volume is the same. A stopped workspace just changes size.</summary>
    public async Task<Workspace> ResizeAsync(string owner, string name, string newSize, GpuMode gpuMode, IProgress<WorkspaceProgress>? progress, CancellationToken ct)
    {
        var size = sizes.Get(newSize);
        await using var gate = await LockAsync(owner, name, progress, ct);
        var workspace = await GetAsync(owner, name, ct);
        workspace = await RefreshLockedAsync(workspace, new LabelScan(this), ct);
        // Refuse before stopping anything: a resize that cannot start must not take the workspace down.
        // It stays on its backend (its home lives there), whatever the routing says for the new size.
        var host = await CapacityAsync(BackendOf(workspace), ct);
        GpuPolicy.Decide(workspace.Environment, gpuMode, size, host.Gpus);
        CheckCapacity(size, host, gpuMode);
        var wasRunning = workspace.State == WorkspaceState.Running;
        if (wasRunning || workspace.State is WorkspaceState.Starting or WorkspaceState.Failed)
        {
            Say(progress, workspace, $"stopping {name} (size {workspace.Size})");
            workspace = await StopLockedAsync(workspace, null, ct);
            FaultPoints.Hit("resize.after-stop");
        }

        workspace = await SaveAsync(workspace with { Size = size.Name, UpdatedAt = time.GetUtcNow() }, $"size {size.Name}", ct);
        FaultPoints.Hit("resize.after-size");
        return wasRunning ? await StartLockedAsync(workspace, gpuMode, size, progress, ct) : workspace;
    }

    /// <summary>Stops a workspace (its home is kept); <paramref name="reason"/> says why in the published change (the culler's).</summary>
    public async Task<Workspace> StopAsync(string owner, string name, IProgress<WorkspaceProgress>? progress, CancellationToken ct, string? reason = null)
    {
        await using var gate = await LockAsync(owner, name, progress, ct);
        return await StopLockedAsync(await GetAsync(owner, name, ct), reason, ct);
    }

    /// <summary>Deletes the workspace. Its home is deleted only when <paramref name="deleteHome"/> is set.</summary>
    public async Task DeleteAsync(string owner, string name, bool deleteHome, IProgress<WorkspaceProgress>? progress, CancellationToken ct)
    {
        await using var gate = await LockAsync(owner, name, progress, ct);
        var workspace = await GetAsync(owner, name, ct);
        await BackendOf(workspace).DeleteAsync(await HandleOfAsync(workspace, ct), workspace.HomeVolume, keepHome: !deleteHome, ct);
        FaultPoints.Hit("rm.after-engine");
        await DeleteRecordAsync(workspace, deleteHome ? "deleted with its home" : "deleted; home kept", ct);
        if (deleteHome && workspace.HomeId.Length > 0)
        {
            await store.DeleteHomeAsync(workspace.HomeId, ct);
        }
    }

    /// <summary>
    /// Deletes every workspace of a user that is being deleted (servers stop and go) and keeps their homes as
    /// orphaned homes: attached to nobody until an admin reassigns or purges them.
    /// </summary>
    public async Task<int> RemoveOwnerAsync(string owner, string ownerId, CancellationToken ct)
    {
        var removed = 0;
        foreach (var w in await store.ListAsync(owner, ct))
        {
            if (w.OwnerId.Length > 0 && w.OwnerId != ownerId)
            {
                continue;
            }

            await DeleteAsync(w.Owner, w.Name, deleteHome: false, null, ct);
            removed++;
        }

        var now = time.GetUtcNow();
        foreach (var h in await store.ListHomesAsync(ownerId, ct))
        {
            if (h.OrphanedAt is null)
            {
                await store.SaveHomeAsync(h with { OrphanedAt = now }, ct);
            }
        }

        return removed;
    }

    /// <summary>Gives a home (usually an orphaned one) to another user, attached to their workspace <paramref name="name"/>.</summary>
    public async Task<Home> ReassignHomeAsync(string homeId, string owner, string ownerId, string name, CancellationToken ct)
    {
        WorkspaceNames.Validate(name);
        WorkspaceNames.Validate(owner, "owner name");
        await using var gate = await LockAsync(owner, name, null, ct);
        var home = await store.GetHomeAsync(homeId, ct) ?? throw new NotFoundException($"no home '{homeId}'");
        if (await store.FindHomeAsync(ownerId, name, ct) is { } taken && taken.Id != home.Id)
        {
            throw new ConflictException($"user '{owner}' already has a home for '{name}' ({taken.Id}); purge or reassign that one first");
        }

        if ((await store.ListAsync(null, ct)).FirstOrDefault(w => w.HomeId == home.Id || (w.Owner == owner && w.Name == name)) is { } user)
        {
            throw new ConflictException($"workspace '{user.Owner}/{user.Name}' exists; delete it (keeping its home) before its home changes hands");
        }

        var moved = home with { OwnerId = ownerId, Owner = owner, Name = name, OrphanedAt = null };
        await store.SaveHomeAsync(moved, ct);
        return moved;
    }

    /// <summary>Deletes a home that no workspace uses, with its data (an admin's explicit purge).</summary>
    public async Task PurgeHomeAsync(string homeId, CancellationToken ct)
    {
        var home = await store.GetHomeAsync(homeId, ct) ?? throw new NotFoundException($"no home '{homeId}'");
        if ((await store.ListAsync(null, ct)).FirstOrDefault(w => w.HomeId == home.Id) is { } user)
        {
            throw new ConflictException($"home '{homeId}' is used by workspace '{user.Owner}/{user.Name}'; delete the workspace first");
        }

        await backends.Get(home.Backend).DeleteHomeAsync(home.Volume, ct);
        await store.DeleteHomeAsync(home.Id, ct);
    }

    /// <summary>
    /// Upgrade from names to IDs: every record made before IDs gets its owner's ID and a home record that keeps the
    /// old volume (<c>dsvm-home-OWNER-NAME</c>) as its object, so the files stay where they are, with that owner. A
    /// record whose owner has no ID any more (<paramref name="ownerIdOf"/> answers null) keeps its home orphaned.
    /// </summary>
    public async Task<int> AdoptLegacyRecordsAsync(Func<string, string?> ownerIdOf, CancellationToken ct)
    {
        var adopted = 0;
        foreach (var w in await store.ListAsync(null, ct))
        {
            if (w.HomeId.Length > 0 && w.OwnerId.Length > 0)
            {
                continue;
            }

            await using var gate = await LockAsync(w.Owner, w.Name, null, ct);
            var current = await store.FindAsync(w.Owner, w.Name, ct);
            if (current is null || (current.HomeId.Length > 0 && current.OwnerId.Length > 0))
            {
                continue;
            }

            var ownerId = current.OwnerId.Length > 0 ? current.OwnerId : ownerIdOf(current.Owner);
            var home = current.HomeId.Length > 0 ? await store.GetHomeAsync(current.HomeId, ct) : null;
            if (home is null)
            {
                home = new Home
                {
                    Id = WorkspaceIds.NewHomeId(), OwnerId = ownerId ?? "", Owner = current.Owner, Name = current.Name, Backend = current.Backend,
                    Volume = current.HomeVolume, CreatedAt = current.CreatedAt, OrphanedAt = ownerId is null ? time.GetUtcNow() : null,
                };
                await store.SaveHomeAsync(home, ct);
            }

            if (ownerId is null)
            {
                // Its owner is gone: the record goes (its server is stopped and removed), the home stays orphaned.
                await BackendOf(current).DeleteAsync(await HandleOfAsync(current, ct), current.HomeVolume, keepHome: true, ct);
                await DeleteRecordAsync(current, "deleted: its owner no longer exists; home kept as an orphaned home", ct);
            }
            else
            {
                await SaveAsync(current with { OwnerId = ownerId, HomeId = home.Id }, "given its owner's ID and a home record", ct);
            }

            adopted++;
        }

        return adopted;
    }

    public async Task<string> LogsAsync(string owner, string name, int tail, CancellationToken ct)
    {
        var workspace = await GetAsync(owner, name, ct);
        return await BackendOf(workspace).GetLogsAsync(workspace.Handle, tail, ct);
    }

    /// <summary>The backend a workspace lives on.</summary>
    public IWorkspaceBackend BackendOf(Workspace workspace) => backends.Get(workspace.Backend);

    /// <summary>Lists workspaces with their states checked against the engine (records deleted meanwhile are left out).</summary>
    public async Task<IReadOnlyList<Workspace>> ListAsync(string? owner, CancellationToken ct)
    {
        var list = new List<Workspace>();
        var scan = new LabelScan(this);
        foreach (var w in await store.ListAsync(owner, ct))
        {
            if (await RefreshAsync(w, scan, ct) is { } refreshed)
            {
                list.Add(refreshed);
            }
        }

        return list;
    }

    /// <summary>
    /// Repairs records from the engine's labelled objects (see docs/workspaces.md, "Repair rules"); labelled resources
    /// with no record are reported, never deleted.
    /// </summary>
    public async Task<ReconcileReport> ReconcileAsync(CancellationToken ct)
    {
        var repaired = new List<string>();
        var scan = new LabelScan(this);
        var records = await store.ListAsync(null, ct);
        foreach (var w in records)
        {
            var refreshed = await RefreshAsync(w, scan, ct);
            if (refreshed?.State != w.State)
            {
                repaired.Add($"{w.Owner}/{w.Name}: {w.State} -> {refreshed?.State.ToString() ?? "deleted"}");
            }
        }

        var known = records.Select(r => r.Id).ToHashSet(StringComparer.Ordinal);
        var unknown = new List<ManagedResource>();
        // The default backend and those the records above used: configured clusters nobody uses are not contacted.
        foreach (var backend in backends.Created.Append(backends.Default).Distinct())
        {
            foreach (var r in await scan.AllAsync(backend, ct))
            {
                if (!known.Contains(r.WorkspaceId))
                {
                    unknown.Add(r);
                }
            }

            if (backend is IOrphanSweeper sweeper)
            {
                repaired.AddRange(await sweeper.SweepOrphansAsync(ct));
            }
        }

        return new ReconcileReport(repaired, unknown);
    }

    /// <summary>
    /// Rebuilds the records of labelled objects that have none (after a corrupt state file was moved aside), from
    /// their labels: each becomes a Stopped record with a new token; a running server is stopped first (the lost
    /// token is in no record, so nothing could reach it), its home is kept. Objects without owner and name labels are skipped.
    /// </summary>
    public async Task<IReadOnlyList<Workspace>> RebuildFromLabelsAsync(CancellationToken ct)
    {
        var rebuilt = new List<Workspace>();
        var known = (await store.ListAsync(null, ct)).Select(r => r.Id).ToHashSet(StringComparer.Ordinal);
        var scan = new LabelScan(this);
        foreach (var backend in backends.Created.Append(backends.Default).Distinct())
        {
            foreach (var group in (await scan.AllAsync(backend, ct)).Where(r => !known.Contains(r.WorkspaceId)).GroupBy(r => r.WorkspaceId, StringComparer.Ordinal))
            {
                var r = group.OrderByDescending(x => x.Running).First();
                if (!r.Labels.TryGetValue(WorkspaceLabels.Owner, out var owner) || !r.Labels.TryGetValue(WorkspaceLabels.Name, out var name)
                    || !WorkspaceNames.IsValid(owner) || !WorkspaceNames.IsValid(name))
                {
                    continue;
                }

                await using var gate = await LockAsync(owner, name, null, ct);
                if (await store.FindAsync(owner, name, ct) is not null)
                {
                    continue;
                }

                foreach (var running in group.Where(x => x.Running))
                {
                    await backend.StopAsync(running.Handle, ct);
                }

                var now = time.GetUtcNow();
                var ownerId = r.Labels.TryGetValue(WorkspaceLabels.OwnerId, out var oid) && WorkspaceIds.IsValid(oid) ? oid : "";
                var homeId = r.Labels.TryGetValue(WorkspaceLabels.Home, out var hid) && hid.StartsWith("h-", StringComparison.Ordinal) && WorkspaceIds.IsValid(hid) ? hid : "";
                var homeVolume = r.Labels.GetValueOrDefault(WorkspaceLabels.HomeVolume)
                    ?? (homeId.Length > 0 ? WorkspaceIds.HomeObjectName(homeId) : $"dsvm-home-{owner}-{name}");
                if (homeId.Length > 0 && ownerId.Length > 0 && await store.GetHomeAsync(homeId, ct) is null)
                {
                    await store.SaveHomeAsync(new Home
                    {
                        Id = homeId, OwnerId = ownerId, Owner = owner, Name = name, Backend = backend.Name, Volume = homeVolume, CreatedAt = now,
                    }, ct);
                }

                rebuilt.Add(await SaveAsync(new Workspace
                {
                    Id = r.WorkspaceId,
                    Name = name,
                    Owner = owner,
                    OwnerId = ownerId,
                    HomeId = homeId,
                    Environment = r.Labels.GetValueOrDefault(WorkspaceLabels.Environment, "unknown"),
                    Image = r.Labels.GetValueOrDefault(WorkspaceLabels.Image, ""),
                    Size = r.Labels.TryGetValue(WorkspaceLabels.Size, out var size) && sizes.Contains(size) ? size : SizeCatalog.DefaultSize,
                    Backend = backend.Name,
                    HomeVolume = homeVolume,
                    Token = NewToken(),
                    State = WorkspaceState.Stopped,
                    LastError = $"rebuilt from the engine's labels at {now:u} (`dsvm doctor --repair`)",
                    CreatedAt = now,
                    UpdatedAt = now,
                }, "rebuilt from the engine's labels", ct));
            }
        }

        return rebuilt;
    }

    /// <summary>The engine's labelled objects, listed once per backend per pass.</summary>
    private sealed class LabelScan(WorkspaceManager manager)
    {
        private readonly Dictionary<string, IReadOnlyList<ManagedResource>> _byBackend = new(StringComparer.Ordinal);

        public async Task<IReadOnlyList<ManagedResource>> AllAsync(IWorkspaceBackend backend, CancellationToken ct)
        {
            if (!_byBackend.TryGetValue(backend.Name, out var all))
            {
                var list = new List<ManagedResource>();
                await foreach (var r in backend.ListManagedAsync(ct))
                {
                    list.Add(r);
                }

                _byBackend[backend.Name] = all = list;
            }

            return all;
        }

        /// <summary>The workspace's object (a running one first), found by its workspace label.</summary>
        public async Task<ManagedResource?> FindAsync(Workspace w, CancellationToken ct) =>
            (await AllAsync(manager.BackendOf(w), ct)).Where(r => r.WorkspaceId == w.Id).OrderByDescending(r => r.Running).FirstOrDefault();
    }

    private static bool HasHandle(Workspace w) => w.BackendState is { Length: > 2 } && w.BackendState != "{}";

    /// <summary>The record's handle, or when it has none (a start killed before the handle was written), the one found by label.</summary>
    private async Task<WorkspaceHandle> HandleOfAsync(Workspace w, CancellationToken ct) =>
        HasHandle(w) ? w.Handle : (await new LabelScan(this).FindAsync(w, ct))?.Handle ?? w.Handle;

    /// <summary>Whether an accepted (Pending) start is still within its start deadline, counted from its last write.</summary>
    public bool IsWithinStartDeadline(Workspace w) => time.GetUtcNow() - w.UpdatedAt <= StartTimeoutOf(BackendOf(w));

    private TimeSpan StartTimeoutOf(IWorkspaceBackend backend) =>
        backend.MinimumStartTimeout is { } least && least > _options.StartTimeout ? least : _options.StartTimeout;

    /// <summary>
    /// A reader's refresh: repairs the record only under its lock, taken without waiting. When another command holds
    /// the lock, the record is returned as it is (that command writes the truth). Null: deleted meanwhile.
    /// </summary>
    private async Task<Workspace?> RefreshAsync(Workspace w, LabelScan scan, CancellationToken ct)
    {
        if (w.State is WorkspaceState.Stopped or WorkspaceState.Failed && w.ContainerId is null && await scan.FindAsync(w, ct) is not { Running: true })
        {
            // Nothing of it runs: nothing to repair, no lock needed.
            return w;
        }

        await using var gate = FileGate.TryAcquire(LockPath(w.Owner, w.Name));
        if (gate is null)
        {
            return w;
        }

        var fresh = await store.FindAsync(w.Owner, w.Name, ct);
        if (fresh is null || fresh.Id != w.Id)
        {
            return fresh;
        }

        try
        {
            return await RefreshLockedAsync(fresh, scan, ct);
        }
        catch (StaleWorkspaceException)
        {
            // Written meanwhile by a process that did not take the lock: its copy is newer.
            return await store.FindAsync(w.Owner, w.Name, ct);
        }
    }

    /// <summary>Brings one record in line with the engine; the caller holds the workspace's lock. Rules: docs/workspaces.md.</summary>
    private async Task<Workspace> RefreshLockedAsync(Workspace w, LabelScan scan, CancellationToken ct)
    {
        var backend = BackendOf(w);
        var handle = w.Handle;
        var status = HasHandle(w) ? await backend.GetStatusAsync(handle, ct) : new WorkspaceStatus(false, false, "no handle recorded");
        if (!status.Running && await scan.FindAsync(w, ct) is { Running: true } found)
        {
            // Found by label: a start killed before it wrote the handle, or a handle that names an older object.
            handle = found.Handle;
            status = await backend.GetStatusAsync(handle, ct);
        }

        var now = time.GetUtcNow();
        var pastDeadline = now - w.UpdatedAt > StartTimeoutOf(backend);
        Workspace? next;
        if (status.Running)
        {
            var ready = status.Endpoint is not null && await probe.IsReadyAsync(status.Endpoint, w.BaseUrl, w.Token, ct);
            next = w.State switch
            {
                // The stop was interrupted (killed, engine gone): finish it.
                WorkspaceState.Stopping => await StoppedAsync(backend, handle, w, "stop finished after an interruption", ct),
                // A replaced swarm task, a container its engine restarted: a new object or a new host port.
                WorkspaceState.Running when HandleChanged(w, handle) || EndpointChanged(w, status) => Adopt(w, handle, status, WorkspaceState.Running, now),
                WorkspaceState.Running => null,
                _ when ready => Adopt(w, handle, status, WorkspaceState.Running, now) with { StartedAt = w.StartedAt ?? StartOf(status, now) },
                // Started but not answering yet: it has until the start deadline (from its last write).
                WorkspaceState.Starting or WorkspaceState.Pending or WorkspaceState.Building when !pastDeadline =>
                    HandleChanged(w, handle) ? Adopt(w, handle, status, w.State, w.UpdatedAt) : null,
                WorkspaceState.Stopped or WorkspaceState.Failed => Adopt(w, handle, status, WorkspaceState.Starting, now),
                _ => await StoppedAsync(backend, handle, w, null, ct) with
                {
                    State = WorkspaceState.Failed,
                    LastError = $"workspace '{w.Name}' did not answer within {StartTimeoutOf(backend).TotalSeconds:0} s of its start (interrupted at {w.UpdatedAt:u}); stopped it, home kept: `dsvm start {w.Name}`",
                },
            };
        }
        else
        {
            next = w.State switch
            {
                WorkspaceState.Running => Gone(w, $"found stopped at {now:u} ({status.Detail})"),
                WorkspaceState.Starting or WorkspaceState.Building => Gone(w, $"start interrupted at {w.UpdatedAt:u} ({status.Detail}); `dsvm start {w.Name}` starts it again"),
                WorkspaceState.Stopping => Gone(w, WithoutUnfinishedStop(w.LastError)),
                // Accepted, nothing created yet: the start has until its deadline to begin.
                WorkspaceState.Pending when status.Exists || pastDeadline => Gone(w,
                    $"start interrupted before anything was started (accepted at {w.UpdatedAt:u}); start it again") with { State = WorkspaceState.Failed },
                _ => null,
            };
        }

        // A state change is dated now; an adoption within the deadline keeps the date the deadline runs from.
        return next is null ? w : await SaveAsync(next.State == w.State ? next : next with { UpdatedAt = now },
            next.State == w.State ? "updated from the engine" : $"{Lower(w.State)} -> {Lower(next.State)}, as the engine says" + (next.LastError is { } why ? $": {why}" : ""), ct);
    }

    /// <summary>When the engine says the server started; now where it does not say, or says a time to come (clock skew).</summary>
    private static DateTimeOffset StartOf(WorkspaceStatus status, DateTimeOffset now) => status.StartedAt is { } t && t <= now ? t : now;

    private static bool HandleChanged(Workspace w, WorkspaceHandle handle) => handle.State.GetRawText() != w.BackendState;

    private static bool EndpointChanged(Workspace w, WorkspaceStatus status) => status.Endpoint is { } e && e.ToString() != w.Endpoint;

    private static Workspace Adopt(Workspace w, WorkspaceHandle handle, WorkspaceStatus status, WorkspaceState state, DateTimeOffset updatedAt) => w with
    {
        State = state,
        BackendState = handle.State.GetRawText(),
        ContainerId = handle.State.ValueKind == JsonValueKind.Object && handle.State.TryGetProperty("container", out var c) ? c.GetString() : w.ContainerId,
        Endpoint = status.Endpoint?.ToString() ?? w.Endpoint,
        LastError = state == WorkspaceState.Running ? null : w.LastError,
        UpdatedAt = updatedAt,
    };

    private static Workspace Gone(Workspace w, string? error) => w with { State = WorkspaceState.Stopped, Endpoint = null, LastError = error };

    private static async Task<Workspace> StoppedAsync(IWorkspaceBackend backend, WorkspaceHandle handle, Workspace w, string? error, CancellationToken ct)
    {
        await backend.StopAsync(handle, ct);
        return w with { State = WorkspaceState.Stopped, Endpoint = null, ContainerId = null, LastError = error ?? w.LastError };
    }

    private async Task<HostCapacity> CapacityAsync(IWorkspaceBackend backend, CancellationToken ct)
    {
        var cap = await backend.GetCapacityAsync(ct);
        if (!backend.RunsOnThisHost)
        {
            // A cluster's capacity is its nodes', not this machine's GPUs.
            return cap;
        }

        var detected = await gpus.DetectAsync(ct);
        return cap with { Gpus = Math.Max(cap.Gpus, detected.Count) };
    }

    private static void CheckCapacity(MachineSize size, HostCapacity host, GpuMode mode)
    {
        // An optional-GPU environment may still start on a GPU size without GPUs (CPU fallback).
        var effective = mode == GpuMode.Optional && host.Gpus < size.Gpus ? size with { Gpus = 0 } : size;
        if (SizeCatalog.WhyNot(effective, host) is { } why)
        {
            throw new WorkspaceStartException(WorkspaceFailure.Capacity, $"size '{size.Name}' does not fit this host: it {why}; see `dsvm sizes`");
        }
    }

    private async Task<Workspace> StartLockedAsync(Workspace workspace, GpuMode gpuMode, MachineSize size, IProgress<WorkspaceProgress>? progress, CancellationToken ct)
    {
        var backend = BackendOf(workspace);
        var host = await CapacityAsync(backend, ct);
        var gpu = GpuPolicy.Decide(workspace.Environment, gpuMode, size, host.Gpus);
        CheckCapacity(size, host, gpuMode);
        // The backend's steps (pulling, scheduling) go to the caller and are published; the lines below that come
        // with a record write are published with it.
        var relay = new Relay(progress, _notifications, workspace.Owner, workspace.Name);
        if (gpu.Notice is not null)
        {
            relay.Report(new WorkspaceProgress(gpu.Notice));
        }

        var started = time.GetUtcNow();
        workspace = workspace with
        {
            State = WorkspaceState.Starting, GpuEnabled = gpu.UseGpu, CpuFallback = gpu.CpuFallback, LastError = null,
            UpdatedAt = started,
        };
        var starting = $"starting {workspace.Name} ({size.Name}: {size.Vcpus:0.##} vCPU, {size.MemoryGiB:0.##} GiB{(gpu.UseGpu ? $", {size.Gpus} GPU" : "")})";
        workspace = await SaveAsync(workspace, starting, ct);
        progress?.Report(new WorkspaceProgress(starting));

        var startTimeout = StartTimeoutOf(backend);
        FaultPoints.Hit("start.before-engine");
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(startTimeout);
        WorkspaceLaunch? launch = null;
        try
        {
            launch = await backend.StartAsync(new WorkspaceStartRequest
            {
                Id = workspace.Id,
                Name = workspace.Name,
                Owner = workspace.Owner,
                OwnerId = workspace.OwnerId,
                HomeId = workspace.HomeId,
                Image = workspace.Image,
                Size = size,
                Token = workspace.Token,
                HomeVolume = workspace.HomeVolume,
                BaseUrl = workspace.BaseUrl,
                Gpu = gpu.UseGpu,
                Labels = Labels(workspace, size),
            }, relay, timeout.Token);
            FaultPoints.Hit("start.after-engine");
            workspace = workspace with
            {
                BackendState = launch.Handle.State.GetRawText(),
                ContainerId = launch.Handle.State.TryGetProperty("container", out var c) ? c.GetString() : null,
                Endpoint = launch.Endpoint.ToString(),
            };
            workspace = await SaveAsync(workspace, "waiting for Jupyter to answer", ct);
            FaultPoints.Hit("start.after-handle");
            progress?.Report(new WorkspaceProgress("waiting for Jupyter to answer"));
            await WaitReadyAsync(workspace, launch, timeout.Token);
            FaultPoints.Hit("start.after-ready");
        }
        catch (Exception ex) when (ex is WorkspaceStartException or OperationCanceledException or DsvmException)
        {
            var reason = ex switch
            {
                WorkspaceStartException w => w.Reason,
                OperationCanceledException when !ct.IsCancellationRequested => WorkspaceFailure.Timeout,
                _ => WorkspaceFailure.Backend,
            };
            if (ex is OperationCanceledException && ct.IsCancellationRequested)
            {
                // The caller gave up (Ctrl-C): leave a consistent record; the next command reconciles it.
                await SaveAsync(workspace with { UpdatedAt = time.GetUtcNow() }, "start cancelled by its caller", CancellationToken.None);
                throw;
            }

            var logs = launch is null ? "" : await SafeLogsAsync(backend, launch.Handle);
            var message = reason == WorkspaceFailure.Timeout
                ? $"workspace '{workspace.Name}' did not answer within {startTimeout.TotalSeconds:0} s"
                : $"workspace '{workspace.Name}' failed to start: {ex.Message}";
            if (logs.Length > 0)
            {
                message += $"\nlast log lines:\n{logs}";
            }

            if (launch is not null)
            {
                await backend.StopAsync(launch.Handle, CancellationToken.None);
            }

            await SaveAsync(workspace with { State = WorkspaceState.Failed, LastError = message, UpdatedAt = time.GetUtcNow() }, message, CancellationToken.None);
            throw ex is WorkspaceStartException { Reason: not WorkspaceFailure.Backend } && logs.Length == 0
                ? ex
                : new WorkspaceStartException(reason, message);
        }

        return await SaveAsync(workspace with { State = WorkspaceState.Running, StartedAt = time.GetUtcNow(), UpdatedAt = time.GetUtcNow() }, "ready", ct);
    }

    private async Task WaitReadyAsync(Workspace workspace, WorkspaceLaunch launch, CancellationToken ct)
    {
        var backend = BackendOf(workspace);
        var polls = 0;
        var wait = _options.PollInterval;
        while (true)
        {
            if (await probe.IsReadyAsync(launch.Endpoint, workspace.BaseUrl, workspace.Token, ct))
            {
                return;
            }

            // The fault point sits at the first probe that finds the server not answering yet (a fresh server
            // never answers the first probe), so a test kills there whatever the machine's speed: at the 10th poll, as
            // before, a quick Jupyter answered first on a quiet machine and the kill never came.
            if (++polls == 1)
            {
                FaultPoints.Hit("start.readiness");
            }

            // Every few polls, make sure the server is still alive: a crash fails now, not at the timeout.
            if (polls % 10 == 0)
            {
                var status = await backend.GetStatusAsync(launch.Handle, ct);
                if (!status.Running)
                {
                    throw new WorkspaceStartException(WorkspaceFailure.Backend, $"the server exited ({status.Detail})");
                }
            }

            await Task.Delay(wait, time, ct);
            wait = TimeSpan.FromTicks(Math.Min(wait.Ticks * 3 / 2, Math.Max(_options.MaxPollInterval.Ticks, _options.PollInterval.Ticks)));
        }
    }

    private async Task<string> SafeLogsAsync(IWorkspaceBackend backend, WorkspaceHandle handle)
    {
        try
        {
            return (await backend.GetLogsAsync(handle, _options.FailureLogLines, CancellationToken.None)).TrimEnd();
        }
        catch (DsvmException)
        {
            return "";
        }
    }

    /// <summary>
    /// Records Stopping, stops, records Stopped. A stop that fails midway (engine unreachable, process killed) leaves
    /// Stopping, which the next command or reconcile finishes (see <see cref="RefreshLockedAsync"/>); a stop the engine
    /// failed also notes why on the record, so that whoever looks meanwhile sees what the stop waits for.
    /// </summary>
    private async Task<Workspace> StopLockedAsync(Workspace workspace, string? reason, CancellationToken ct)
    {
        if (workspace.ContainerId is not null || workspace.State != WorkspaceState.Stopped)
        {
            var handle = await HandleOfAsync(workspace, ct);
            workspace = await SaveAsync(workspace with { State = WorkspaceState.Stopping, UpdatedAt = time.GetUtcNow() }, reason is null ? "stopping" : $"stopping: {reason}", ct);
            FaultPoints.Hit("stop.after-stopping");
            try
            {
                await BackendOf(workspace).StopAsync(handle, ct);
            }
            catch (Exception ex) when (ex is not OperationCanceledException || !ct.IsCancellationRequested)
            {
                await NoteUnfinishedStopAsync(workspace, ex);
                throw;
            }

            FaultPoints.Hit("stop.after-engine");
        }

        return await SaveAsync(workspace with { State = WorkspaceState.Stopped, Endpoint = null, ContainerId = null, LastError = WithoutUnfinishedStop(workspace.LastError), UpdatedAt = time.GetUtcNow() },
            reason is null ? "stopped; home kept" : $"stopped: {reason}; home kept", ct);
    }

    /// <summary>How the note on a record whose stop the engine failed begins.</summary>
    private const string UnfinishedStop = "stop not finished: ";

    private static string? WithoutUnfinishedStop(string? lastError) =>
        lastError?.StartsWith(UnfinishedStop, StringComparison.Ordinal) == true ? null : lastError;

    /// <summary>
    /// Keeps Stopping, with why the stop is not finished and when it will be. Best effort: the stop's own error is the
    /// one the caller gets, even when the store cannot be written either.
    /// </summary>
    private async Task NoteUnfinishedStopAsync(Workspace stopping, Exception failure)
    {
        // Users read the record (the hub's list): the engine's kind, never its endpoint.
        var why = EngineFaults.ForUsers(failure) ?? "the engine failed";
        try
        {
            await SaveAsync(stopping with { LastError = $"{UnfinishedStop}{why}; it is finished when the engine answers again (the next command, or the hub's reconcile)" },
                UnfinishedStop + why, CancellationToken.None);
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            // The store failed too: the record stays Stopping without the note, and the caller gets the stop's error.
        }
    }

    /// <summary>Writes a record and publishes it: every write of a workspace record goes through here.</summary>
    private async Task<Workspace> SaveAsync(Workspace workspace, string message, CancellationToken ct)
    {
        var saved = await store.SaveAsync(workspace, ct);
        _notifications.Written(saved, message);
        return saved;
    }

    /// <summary>Deletes a record and publishes that: every deletion of a workspace record goes through here.</summary>
    private async Task DeleteRecordAsync(Workspace workspace, string message, CancellationToken ct)
    {
        await store.DeleteAsync(workspace, ct);
        _notifications.Deleted(workspace, message);
    }

    /// <summary>A line for the caller's progress and for the published changes, about a record that does not change.</summary>
    private void Say(IProgress<WorkspaceProgress>? progress, Workspace workspace, string message)
    {
        progress?.Report(new WorkspaceProgress(message));
        _notifications.Message(workspace.Owner, workspace.Name, workspace.State, message);
    }

    private static string Lower(WorkspaceState state) => state.ToString().ToLowerInvariant();

    /// <summary>A start's progress (the backend's steps included): to the caller's progress, and published.</summary>
    private sealed class Relay(IProgress<WorkspaceProgress>? inner, WorkspaceNotifications notifications, string owner, string name) : IProgress<WorkspaceProgress>
    {
        public void Report(WorkspaceProgress value)
        {
            inner?.Report(value);
            notifications.Message(owner, name, WorkspaceState.Starting, value.Message);
        }
    }

    /// <summary>The labels of a workspace's objects: IDs for lookups, names for people.</summary>
    private static Dictionary<string, string> Labels(Workspace workspace, MachineSize size)
    {
        var labels = new Dictionary<string, string>
        {
            [WorkspaceLabels.Owner] = workspace.Owner,
            [WorkspaceLabels.Name] = workspace.Name,
            [WorkspaceLabels.Environment] = workspace.Environment,
            [WorkspaceLabels.Size] = size.Name,
            [WorkspaceLabels.Image] = workspace.Image,
            [WorkspaceLabels.HomeVolume] = workspace.HomeVolume,
        };
        if (workspace.OwnerId.Length > 0)
        {
            labels[WorkspaceLabels.OwnerId] = workspace.OwnerId;
        }

        if (workspace.HomeId.Length > 0)
        {
            labels[WorkspaceLabels.Home] = workspace.HomeId;
        }

        return labels;
    }

    private static string NewToken() => Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(32));
}
