using System.Text.Json;
using System.Text.Json.Serialization;
using System.Text.RegularExpressions;
using Dsvm.Core.Sizes;

namespace Dsvm.Core.Workspaces;

[JsonConverter(typeof(JsonStringEnumConverter<WorkspaceState>))]
public enum WorkspaceState
{
    Pending,
    Building,
    Starting,
    Running,
    Stopping,
    Stopped,
    Failed,
}

/// <summary>A workspace as OpenDSVM records it. The token is a secret: never logged, never printed except in the local URL.</summary>
public sealed record Workspace
{
    public required string Id { get; init; }
    public required string Name { get; init; }
    public required string Owner { get; init; }

    /// <summary>The owner's immutable ID (<see cref="WorkspaceIds.LocalOwnerId"/> for the CLI); empty only on records made before IDs, until adopted.</summary>
    public string OwnerId { get; init; } = "";

    public required string Environment { get; init; }
    public required string Image { get; init; }
    public required string Size { get; init; }
    public required string Backend { get; init; }

    /// <summary>The home's engine object (a copy of its <see cref="Home.Volume"/>).</summary>
    public required string HomeVolume { get; init; }

    /// <summary>The <see cref="Home"/> record this workspace mounts; empty only on records made before IDs, until adopted.</summary>
    public string HomeId { get; init; } = "";

    [JsonIgnore]
    public required string Token { get; init; }
    public WorkspaceState State { get; init; } = WorkspaceState.Pending;
    public string? ContainerId { get; init; }
    public string? Endpoint { get; init; }
    public bool GpuEnabled { get; init; }
    public bool CpuFallback { get; init; }
    public string? LastError { get; init; }
    public DateTimeOffset CreatedAt { get; init; }
    public DateTimeOffset? StartedAt { get; init; }
    public DateTimeOffset UpdatedAt { get; init; }

    /// <summary>The backend's own state (container id, node, ...), opaque to the manager.</summary>
    public string BackendState { get; init; } = "{}";

    /// <summary>
    /// The stored version this copy was read at (0: never stored). A save succeeds only if the stored record is still
    /// at this version and returns the copy at the next one, so a stale reader can neither overwrite nor re-insert.
    /// </summary>
    public long Version { get; init; }

    /// <summary>Path prefix Jupyter serves under (the hub proxies <c>/user/OWNER/NAME/</c>).</summary>
    public string BaseUrl => $"/user/{Owner}/{Name}/";

    public WorkspaceHandle Handle => new(Id, Backend, JsonDocument.Parse(BackendState).RootElement.Clone());
}

public static partial class WorkspaceNames
{
    /// <summary>Docker-, DNS- and URL-safe: lowercase letters, digits, '-', starting with a letter.</summary>
    public static bool IsValid(string name) => Pattern().IsMatch(name);

    public static void Validate(string name, string what = "workspace name")
    {
        if (!IsValid(name))
        {
            throw new UsageException($"'{name}' is not a valid {what}: use 1-40 lowercase letters, digits and '-', starting with a letter");
        }
    }

    [GeneratedRegex(@"\A[a-z][a-z0-9-]{0,39}\z")]
    private static partial Regex Pattern();
}

/// <summary>Opaque, persisted reference to a backend's resources for one workspace.</summary>
public sealed record WorkspaceHandle(string Id, string Backend, JsonElement State);

/// <summary>Everything a backend needs to start a workspace's server.</summary>
public sealed record WorkspaceStartRequest
{
    public required string Id { get; init; }
    public required string Name { get; init; }
    public required string Owner { get; init; }

    /// <summary>The owner's immutable ID (label <see cref="WorkspaceLabels.OwnerId"/>).</summary>
    public string OwnerId { get; init; } = "";

    /// <summary>The home's ID (label <see cref="WorkspaceLabels.Home"/> on the home and on what mounts it).</summary>
    public string HomeId { get; init; } = "";

    public required string Image { get; init; }
    public required MachineSize Size { get; init; }
    public required string Token { get; init; }
    public required string HomeVolume { get; init; }
    public required string BaseUrl { get; init; }
    public bool Gpu { get; init; }
    public IReadOnlyDictionary<string, string> Labels { get; init; } = new Dictionary<string, string>();

    /// <summary>Variables for the server, the same on every backend (<see cref="WorkspaceVariables"/>).</summary>
    public IReadOnlyList<KeyValuePair<string, string>> Variables => WorkspaceVariables.For(Size);
}

/// <summary>What a backend returns once the server process is started (not yet ready).</summary>
public sealed record WorkspaceLaunch(WorkspaceHandle Handle, Uri Endpoint);

public sealed record WorkspaceProgress(string Message);

/// <summary>
/// The backend's view of a workspace (like JupyterHub's Spawner.poll). <paramref name="StartedAt"/>: when the running
/// server (container, task) started, where the engine says; a record that adopts a server it did not see start (a
/// start killed before it wrote the handle) takes its uptime from there, not from the look that found it.
/// </summary>
public sealed record WorkspaceStatus(bool Exists, bool Running, string Detail, Uri? Endpoint = null, DateTimeOffset? StartedAt = null);

/// <summary>A managed resource found by a label scan.</summary>
public sealed record ManagedResource(string WorkspaceId, string Name, bool Running, WorkspaceHandle Handle)
{
    /// <summary>The object's labels (owner, name, environment, size, image), where the backend reads them: <c>dsvm doctor --repair</c> rebuilds records from them.</summary>
    public IReadOnlyDictionary<string, string> Labels { get; init; } = new Dictionary<string, string>();
}

/// <summary>
/// A backend whose objects can outlive every workspace that uses them (a Swarm overlay left by a start or stop that
/// was killed): reconciliation asks it to remove them. Judged by the engine alone (no service of that workspace, old
/// enough), never by one state file's records: several hubs and CLIs may share one engine.
/// </summary>
public interface IOrphanSweeper
{
    /// <summary>Removes such objects; says what was removed, one line each.</summary>
    Task<IReadOnlyList<string>> SweepOrphansAsync(CancellationToken ct);
}

/// <summary>One engine that runs workspaces (Docker, Swarm, Kubernetes...). Stateless: state lives in the handle.</summary>
public interface IWorkspaceBackend
{
    string Name { get; }

    /// <summary>Whether workspaces run on this machine (so its GPUs count); false for clusters (Swarm, Kubernetes).</summary>
    bool RunsOnThisHost => true;

    /// <summary>The least time a start on this backend needs (VMs boot slowly); the manager waits at least this long.</summary>
    TimeSpan? MinimumStartTimeout => null;

    Task<WorkspaceLaunch> StartAsync(WorkspaceStartRequest request, IProgress<WorkspaceProgress>? progress, CancellationToken ct);

    Task StopAsync(WorkspaceHandle handle, CancellationToken ct);

    Task<WorkspaceStatus> GetStatusAsync(WorkspaceHandle handle, CancellationToken ct);

    /// <summary>Removes the server; the home goes too only when <paramref name="keepHome"/> is false.</summary>
    Task DeleteAsync(WorkspaceHandle handle, string homeVolume, bool keepHome, CancellationToken ct);

    /// <summary>The last lines of the server's log, for failure messages and <c>dsvm logs</c>.</summary>
    Task<string> GetLogsAsync(WorkspaceHandle handle, int tailLines, CancellationToken ct);

    /// <summary>Every resource carrying the managed label: reconciles after restarts and outside changes.</summary>
    IAsyncEnumerable<ManagedResource> ListManagedAsync(CancellationToken ct);

    Task<bool> HomeExistsAsync(string homeVolume, CancellationToken ct);

    /// <summary>
    /// Removes a home that no workspace uses (an admin's purge). By default through <see cref="DeleteAsync"/> with a
    /// handle no object carries, so only the home goes.
    /// </summary>
    Task DeleteHomeAsync(string homeVolume, CancellationToken ct) =>
        DeleteAsync(new WorkspaceHandle(NoWorkspaceId, Name, JsonDocument.Parse("{}").RootElement.Clone()), homeVolume, keepHome: false, ct);

    /// <summary>A workspace ID that no object carries.</summary>
    public const string NoWorkspaceId = "ws-000000000000";

    Task<HostCapacity> GetCapacityAsync(CancellationToken ct);
}

/// <summary>Where workspace records live (SQLite by default). Writes are versioned (optimistic concurrency).</summary>
public interface IWorkspaceStore
{
    Task<Workspace?> FindAsync(string owner, string name, CancellationToken ct);

    Task<IReadOnlyList<Workspace>> ListAsync(string? owner, CancellationToken ct);

    /// <summary>
    /// Inserts a record at <see cref="Workspace.Version"/> 0, or updates the stored record if it is still at
    /// <see cref="Workspace.Version"/>; returns the stored copy (at the next version). Throws
    /// <see cref="StaleWorkspaceException"/> when the record changed, was deleted, or (on insert) exists already.
    /// </summary>
    Task<Workspace> SaveAsync(Workspace workspace, CancellationToken ct);

    /// <summary>Deletes the record if it is still at <see cref="Workspace.Version"/> (gone already: nothing to do); else <see cref="StaleWorkspaceException"/>.</summary>
    Task DeleteAsync(Workspace workspace, CancellationToken ct);

    /// <summary>The live (not orphaned) home of <paramref name="ownerId"/> that attaches to workspace <paramref name="name"/>.</summary>
    Task<Home?> FindHomeAsync(string ownerId, string name, CancellationToken ct);

    Task<Home?> GetHomeAsync(string homeId, CancellationToken ct);

    /// <summary>Every home, or one owner's (orphaned ones included: they keep their last owner's ID).</summary>
    Task<IReadOnlyList<Home>> ListHomesAsync(string? ownerId, CancellationToken ct);

    Task SaveHomeAsync(Home home, CancellationToken ct);

    Task DeleteHomeAsync(string homeId, CancellationToken ct);
}

/// <summary>Reads the host's GPUs.</summary>
public interface IGpuDetector
{
    Task<IReadOnlyList<GpuInfo>> DetectAsync(CancellationToken ct);
}

public sealed record GpuInfo(int Index, string Name, string Uuid, long MemoryMiB, string Driver);
