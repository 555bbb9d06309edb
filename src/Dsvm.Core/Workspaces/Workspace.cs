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
    public required string Environment { get; init; }
    public required string Image { get; init; }
    public required string Size { get; init; }
    public required string Backend { get; init; }
    public required string HomeVolume { get; init; }
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

    /// <summary>Path prefix Jupyter serves under (the hub proxies <c>/user/OWNER/NAME/</c>).</summary>
    public string BaseUrl => $"/user/{Owner}/{Name}/";

    public WorkspaceHandle Handle => new(Id, Backend, JsonDocument.Parse(BackendState).RootElement.Clone());
}

public static partial class WorkspaceNames
{
    /// <summary>Docker-, DNS- and URL-safe: lowercase letters, digits, '-', starting with a letter.</summary>
    public static void Validate(string name, string what = "workspace name")
    {
        if (!Pattern().IsMatch(name))
        {
            throw new UsageException($"'{name}' is not a valid {what}: use 1-40 lowercase letters, digits and '-', starting with a letter");
        }
    }

    [GeneratedRegex("^[a-z][a-z0-9-]{0,39}\\z")]
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
    public required string Image { get; init; }
    public required MachineSize Size { get; init; }
    public required string Token { get; init; }
    public required string HomeVolume { get; init; }
    public required string BaseUrl { get; init; }
    public bool Gpu { get; init; }
    public IReadOnlyDictionary<string, string> Labels { get; init; } = new Dictionary<string, string>();
}

/// <summary>What a backend returns once the server process is started (not yet ready).</summary>
public sealed record WorkspaceLaunch(WorkspaceHandle Handle, Uri Endpoint);

public sealed record WorkspaceProgress(string Message);

/// <summary>The backend's view of a workspace (like JupyterHub's Spawner.poll).</summary>
public sealed record WorkspaceStatus(bool Exists, bool Running, string Detail, Uri? Endpoint = null);

/// <summary>A managed resource found by a label scan.</summary>
public sealed record ManagedResource(string WorkspaceId, string Name, bool Running, WorkspaceHandle Handle);

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

    Task<HostCapacity> GetCapacityAsync(CancellationToken ct);
}

/// <summary>Where workspace records live (SQLite by default).</summary>
public interface IWorkspaceStore
{
    Task<Workspace?> FindAsync(string owner, string name, CancellationToken ct);

    Task<IReadOnlyList<Workspace>> ListAsync(string? owner, CancellationToken ct);

    Task SaveAsync(Workspace workspace, CancellationToken ct);

    Task DeleteAsync(string id, CancellationToken ct);
}

/// <summary>Reads the host's GPUs.</summary>
public interface IGpuDetector
{
    Task<IReadOnlyList<GpuInfo>> DetectAsync(CancellationToken ct);
}

public sealed record GpuInfo(int Index, string Name, string Uuid, long MemoryMiB, string Driver);
