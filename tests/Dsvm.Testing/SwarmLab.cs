using CliWrap;
using CliWrap.Buffered;

namespace Dsvm.Testing;

/// <summary>
/// A private 3-node Docker Swarm on this machine (tests/swarm/swarm-lab.sh: network namespaces on a bridge at
/// 10.211.0.0/24, one dockerd per namespace, a registry at 10.211.0.1:5000). Test infrastructure shared by the swarm
/// tests and the swarm benchmark; the backend knows nothing of it. <see cref="StartAsync"/> first removes what a
/// crashed run left; <see cref="DisposeAsync"/> removes everything.
/// </summary>
public sealed class SwarmLab : IAsyncDisposable
{
    public const string Bridge = "10.211.0.1";
    public static readonly string[] NodeAddresses = ["10.211.0.11", "10.211.0.12", "10.211.0.13"];

    /// <summary>The nodes pull from here; the host engine pushes through loopback (no TLS needed there).</summary>
    public const string Registry = "10.211.0.1:5000";
    public const string PushRegistry = "127.0.0.1:5000";

    private readonly string _script;
    private readonly bool _keep;

    private SwarmLab(string script, bool keep) => (_script, _keep) = (script, keep);

    /// <summary>
    /// <c>DSVM_SWARM_REUSE=1</c> keeps the lab (and its registry's pushed layers) between runs while iterating on
    /// tests; by default every run builds it from scratch and removes it at the end.
    /// </summary>
    public static bool Reuse => Environment.GetEnvironmentVariable("DSVM_SWARM_REUSE") == "1";

    public static Uri NodeEngine(int node) => new($"unix:///run/dsvm-swarm/n{node}/docker.sock");

    public static Uri ManagerEndpoint => NodeEngine(1);

    /// <summary>Node address to engine, as the backend's NodeEngines option takes it.</summary>
    public static IReadOnlyDictionary<string, Uri> NodeEngines =>
        Enumerable.Range(1, 3).ToDictionary(n => NodeAddresses[n - 1], NodeEngine);

    /// <summary>Why the lab cannot run here, or null: it needs root, the docker CLI and Debian's docker-registry.</summary>
    public static string? SkipReason()
    {
        if (!OperatingSystem.IsLinux() || Environment.UserName != "root")
        {
            return "the swarm lab needs root (network namespaces, one dockerd per node)";
        }

        if (!File.Exists("/usr/bin/docker-registry"))
        {
            return "docker-registry is not installed (scripts/host-setup.sh --tests installs it)";
        }

        return null;
    }

    /// <summary>Builds the swarm (after tearing down any leftovers). <paramref name="repoRoot"/> holds tests/swarm/swarm-lab.sh.</summary>
    public static async Task<SwarmLab> StartAsync(string repoRoot, CancellationToken ct)
    {
        var lab = new SwarmLab(Path.Combine(repoRoot, "tests", "swarm", "swarm-lab.sh"), Reuse);
        await lab.RunScriptAsync(ct, Reuse ? "reuse" : "up");
        return lab;
    }

    private async Task RunScriptAsync(CancellationToken ct, params string[] args)
    {
        var r = await Cli.Wrap("bash").WithArguments([_script, .. args]).WithValidation(CommandResultValidation.None).ExecuteBufferedAsync(ct);
        if (r.ExitCode != 0)
        {
            throw new InvalidOperationException($"swarm-lab.sh {string.Join(' ', args)} failed ({r.ExitCode}): {r.StandardError.Trim()}");
        }
    }

    /// <summary>Runs the docker CLI against one node's engine (1-3).</summary>
    public static async Task<BufferedCommandResult> DockerAsync(int node, IEnumerable<string> args, CancellationToken ct = default) =>
        await Cli.Wrap("docker").WithArguments(["-H", NodeEngine(node).ToString(), .. args])
            .WithValidation(CommandResultValidation.None).ExecuteBufferedAsync(ct);

    /// <summary>Swarm node id of node 1-3.</summary>
    public static async Task<string> NodeIdAsync(int node, CancellationToken ct = default) =>
        (await DockerAsync(node, ["info", "--format", "{{.Swarm.NodeID}}"], ct)).StandardOutput.Trim();

    /// <summary>The lab's node number (1-3) of a swarm node id.</summary>
    public static async Task<int> NodeNumberAsync(string nodeId, CancellationToken ct = default)
    {
        var ids = await Task.WhenAll(Enumerable.Range(1, 3).Select(n => NodeIdAsync(n, ct)));
        var index = Array.IndexOf(ids, nodeId);
        return index >= 0 ? index + 1 : throw new InvalidOperationException($"node {nodeId} is not one of the lab's");
    }

    /// <summary>Stops node <paramref name="node"/>'s engine (its containers stop with it) and starts it again; returns once it answers.</summary>
    public Task RestartEngineAsync(int node, CancellationToken ct = default) =>
        RunScriptAsync(ct, "restart", node.ToString(System.Globalization.CultureInfo.InvariantCulture));

    public async ValueTask DisposeAsync()
    {
        if (!_keep)
        {
            await RunScriptAsync(CancellationToken.None, "down");
        }
    }

    /// <summary>Pulls an image on every node at once (what an operator does before a class); returns the time taken.</summary>
    public static async Task<TimeSpan> PullEverywhereAsync(string image, CancellationToken ct)
    {
        var sw = System.Diagnostics.Stopwatch.StartNew();
        var results = await Task.WhenAll(Enumerable.Range(1, 3).Select(n => DockerAsync(n, ["pull", "-q", image], ct)));
        if (results.FirstOrDefault(r => r.ExitCode != 0) is { } failed)
        {
            throw new InvalidOperationException($"docker pull {image} on a node failed: {failed.StandardError.Trim()}");
        }

        return sw.Elapsed;
    }
}
