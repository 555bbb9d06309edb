using System.Security.Cryptography;
using System.Text.RegularExpressions;

namespace Dsvm.Core.Workspaces;

/// <summary>
/// Names are for people, IDs are for machines: every engine object is named from immutable IDs, never from the
/// owner's or workspace's name (two names joined by '-' are ambiguous: alice + x-data = alice-x + data).
/// </summary>
public static partial class WorkspaceIds
{
    /// <summary>The owner ID of the local CLI's workspaces (the hub uses its users' IDs, <c>u-&lt;12 hex&gt;</c>).</summary>
    public const string LocalOwnerId = "u-local";

    public static string NewWorkspaceId() => "ws-" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(6));

    public static string NewHomeId() => "h-" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(6));

    /// <summary>Container, Swarm service, pod or VM of a workspace: <c>dsvm-ws-…</c>.</summary>
    public static string ObjectName(string workspaceId) => "dsvm-" + workspaceId;

    /// <summary>Home volume, claim or disk of a home: <c>dsvm-home-h-…</c>.</summary>
    public static string HomeObjectName(string homeId) => "dsvm-home-" + homeId;

    /// <summary>A workspace's own network, where a backend uses one.</summary>
    public static string NetworkName(string workspaceId) => "dsvm-net-" + workspaceId;

    /// <summary>True for the IDs this project makes (lowercase letters, digits and '-'; no path or label separators).</summary>
    public static bool IsValid(string id) => IdPattern().IsMatch(id);

    [GeneratedRegex(@"\A[a-z][a-z0-9-]{1,62}\z")]
    private static partial Regex IdPattern();
}

/// <summary>The labels every managed object carries. Lookups use the ID labels only; the readable ones are for people.</summary>
public static class WorkspaceLabels
{
    public const string Managed = "io.opendsvm.managed";
    public const string Workspace = "io.opendsvm.workspace";
    public const string OwnerId = "io.opendsvm.owner-id";

    /// <summary>The home's ID, on the home itself and on the objects that mount it.</summary>
    public const string Home = "io.opendsvm.home";

    /// <summary>Readable only, never used to find anything.</summary>
    public const string Owner = "io.opendsvm.owner";

    /// <summary>Readable only, never used to find anything.</summary>
    public const string Name = "io.opendsvm.name";

    public const string Environment = "io.opendsvm.environment";
    public const string Size = "io.opendsvm.size";

    /// <summary>The image a workspace runs and the object name of its home: read back by <c>dsvm doctor --repair</c>.</summary>
    public const string Image = "io.opendsvm.image";

    public const string HomeVolume = "io.opendsvm.home-volume";

    /// <summary>A home's labels on every backend: its ID and owner ID (for lookups), the workspace that made it and readable names.</summary>
    public static Dictionary<string, string> ForHome(WorkspaceStartRequest request)
    {
        var labels = new Dictionary<string, string>
        {
            [Managed] = "true",
            [Workspace] = request.Id,
            [Home] = request.HomeId.Length > 0 ? request.HomeId : "true",
            [Owner] = request.Owner,
            [Name] = request.Name,
        };
        if (request.OwnerId.Length > 0)
        {
            labels[OwnerId] = request.OwnerId;
        }

        return labels;
    }
}

/// <summary>
/// A persistent home: belongs to a user ID and attaches to that user's workspace of <see cref="Name"/>. It outlives
/// its workspaces; when its owner is deleted it becomes orphaned (kept, attached to nobody) until an admin reassigns
/// or purges it. A new account never inherits one by name: homes are found by owner ID.
/// </summary>
public sealed record Home
{
    /// <summary><c>h-&lt;12 hex&gt;</c>; legacy homes adopted at upgrade get one too.</summary>
    public required string Id { get; init; }

    public required string OwnerId { get; init; }

    /// <summary>The owner's name when the home was made or last reassigned (readable only).</summary>
    public required string Owner { get; init; }

    /// <summary>The owner's workspace this home attaches to.</summary>
    public required string Name { get; init; }

    /// <summary>The backend it lives on (a workspace that uses it runs there).</summary>
    public required string Backend { get; init; }

    /// <summary>The engine object: <c>dsvm-home-&lt;Id&gt;</c>, or the pre-ID volume name kept at upgrade.</summary>
    public required string Volume { get; init; }

    public DateTimeOffset CreatedAt { get; init; }

    /// <summary>Set when its owner was deleted: no workspace attaches to an orphaned home until it is reassigned.</summary>
    public DateTimeOffset? OrphanedAt { get; init; }
}
