using System.Net;
using CliWrap;
using CliWrap.Buffered;
using Docker.DotNet;
using Docker.DotNet.Models;
using Dsvm.Core;
using Dsvm.Core.Sizes;

namespace Dsvm.Docker;

/// <summary>
/// The two networks workspaces run on (see docs/security-network.md). Not a network per workspace: Docker's default
/// address pools run out at about 30 bridges, and a class has more workspaces than that. Instead two shared bridges
/// with inter-container communication off (<c>enable_icc=false</c>: the engine drops bridge-to-bridge-port traffic),
/// fixed interface names so the host rules of <see cref="HostFirewall"/> can name them before they exist:
/// <list type="bullet">
/// <item><c>dsvm-workspaces</c> (interface <c>dsvm-ws0</c>): NAT to the outside, for <see cref="WorkspaceNetwork.Internet"/>;</item>
/// <item><c>dsvm-isolated</c> (interface <c>dsvm-ws1</c>): <c>--internal</c>, no route out, for <see cref="WorkspaceNetwork.Isolated"/>.</item>
/// </list>
/// Reaching the host (the hub included, on any of its addresses) is refused by the host's INPUT rules; the host
/// reaches workspaces through the loopback-published port or, on the internal network, the container's address.
/// </summary>
public sealed class DockerNetworks(DockerClient client)
{
    public const string InternetNetwork = "dsvm-workspaces";
    public const string IsolatedNetwork = "dsvm-isolated";
    public const string InternetBridge = "dsvm-ws0";
    public const string IsolatedBridge = "dsvm-ws1";

    public static string NameOf(WorkspaceNetwork network) => network == WorkspaceNetwork.Isolated ? IsolatedNetwork : InternetNetwork;

    /// <summary>The engine's definition of a workspace network: no peer traffic, a fixed bridge name.</summary>
    public static NetworksCreateParameters Definition(WorkspaceNetwork network) => new()
    {
        Name = NameOf(network),
        Driver = "bridge",
        Internal = network == WorkspaceNetwork.Isolated,
        CheckDuplicate = true,
        Options = new Dictionary<string, string>
        {
            ["com.docker.network.bridge.name"] = network == WorkspaceNetwork.Isolated ? IsolatedBridge : InternetBridge,
            ["com.docker.network.bridge.enable_icc"] = "false",
            ["com.docker.network.bridge.enable_ip_masquerade"] = network == WorkspaceNetwork.Isolated ? "false" : "true",
        },
        Labels = new Dictionary<string, string> { [DockerWorkspaceBackend.ManagedLabel] = "true", ["io.opendsvm.network"] = network.ToString().ToLowerInvariant() },
    };

    /// <summary>Creates the network if it is missing; refuses one of that name that lets containers talk to each other.</summary>
    public async Task<string> EnsureAsync(WorkspaceNetwork network, CancellationToken ct)
    {
        var name = NameOf(network);
        if (await InspectAsync(name, ct) is not { } existing)
        {
            try
            {
                await client.Networks.CreateNetworkAsync(Definition(network), ct);
            }
            catch (DockerApiException ex) when (ex.StatusCode == HttpStatusCode.Conflict)
            {
                // Created by a concurrent start.
            }

            existing = await InspectAsync(name, ct) ?? throw new DsvmException($"the engine did not create network {name}");
        }

        var opts = existing.Options ?? new Dictionary<string, string>();
        if (!opts.TryGetValue("com.docker.network.bridge.enable_icc", out var icc) || icc != "false"
            || existing.Internal != (network == WorkspaceNetwork.Isolated))
        {
            throw new DsvmException($"network {name} exists but lets workspaces reach each other (or the outside); remove it with `docker network rm {name}` and start again");
        }

        return name;
    }

    private async Task<NetworkResponse?> InspectAsync(string name, CancellationToken ct)
    {
        try
        {
            return await client.Networks.InspectNetworkAsync(name, ct);
        }
        catch (DockerNetworkNotFoundException)
        {
            return null;
        }
        catch (DockerApiException ex) when (ex.StatusCode == HttpStatusCode.NotFound)
        {
            return null;
        }
    }
}

/// <summary>
/// The host side of workspace isolation: iptables rules that refuse traffic from the workspace bridges to the host
/// (every host address: the INPUT chain) and to other workspace bridges and link-local addresses such as a cloud's
/// metadata service (the engine's DOCKER-USER chain). Idempotent: own chains replaced atomically by
/// <c>iptables-restore --noflush</c>, plus one jump each, added only when missing. dockerd never flushes INPUT nor
/// DOCKER-USER, so the rules survive an engine restart; not a reboot (run <c>scripts/host-setup.sh</c> at boot).
/// Needs root (CAP_NET_ADMIN). <c>scripts/host-setup.sh</c> installs the same rules (a test keeps them equal).
/// </summary>
public static class HostFirewall
{
    public const string InputChain = "DSVM-INPUT";
    public const string ForwardChain = "DSVM-FORWARD";
    public const string Interfaces = "dsvm-ws+";

    /// <summary>Input for <c>iptables-restore --noflush</c>: declares (and so empties) and fills the two chains.</summary>
    public static string RestoreScript { get; } = string.Join('\n',
        "*filter",
        $":{InputChain} - [0:0]",
        $":{ForwardChain} - [0:0]",
        $"-A {InputChain} -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT",
        $"-A {InputChain} -j REJECT --reject-with icmp-admin-prohibited",
        $"-A {ForwardChain} -o {Interfaces} -j REJECT --reject-with icmp-admin-prohibited",
        $"-A {ForwardChain} -d 169.254.0.0/16 -j REJECT --reject-with icmp-admin-prohibited",
        "COMMIT",
        "");

    /// <summary>The jumps into the chains, inserted first in INPUT and DOCKER-USER when missing.</summary>
    public static IReadOnlyList<string[]> Jumps { get; } =
    [
        ["INPUT", "-i", Interfaces, "-j", InputChain],
        ["DOCKER-USER", "-i", Interfaces, "-j", ForwardChain],
    ];

    private static readonly SemaphoreSlim Gate = new(1, 1);
    private static bool _installed;

    /// <summary>Installs the rules once per process when running as root; false when not root (nothing done).</summary>
    public static async Task<bool> EnsureAsync(string iptables, CancellationToken ct)
    {
        if (!Environment.IsPrivilegedProcess)
        {
            return false;
        }

        await Gate.WaitAsync(ct);
        try
        {
            if (!_installed)
            {
                await InstallAsync(iptables, ct);
                _installed = true;
            }

            return true;
        }
        finally
        {
            Gate.Release();
        }
    }

    public static async Task InstallAsync(string iptables, CancellationToken ct)
    {
        try
        {
            await RunAsync(iptables, ["-w", "-N", "DOCKER-USER"], mayFail: true, ct);
            var restore = await Cli.Wrap(iptables + "-restore").WithArguments(["-w", "--noflush"])
                .WithStandardInputPipe(PipeSource.FromString(RestoreScript))
                .WithValidation(CommandResultValidation.None).ExecuteBufferedAsync(ct);
            if (restore.ExitCode != 0)
            {
                throw new DsvmException($"{iptables}-restore refused the workspace rules: {restore.StandardError.Trim()}");
            }

            foreach (var jump in Jumps)
            {
                if (!await RunAsync(iptables, ["-w", "-C", .. jump], mayFail: true, ct))
                {
                    await RunAsync(iptables, ["-w", "-I", jump[0], "1", .. jump[1..]], mayFail: false, ct);
                }
            }
        }
        catch (System.ComponentModel.Win32Exception ex)
        {
            throw new DsvmException($"{iptables} is needed to keep workspaces off the host ({ex.Message}): apt-get install iptables");
        }
    }

    private static async Task<bool> RunAsync(string iptables, string[] args, bool mayFail, CancellationToken ct)
    {
        var r = await Cli.Wrap(iptables).WithArguments(args).WithValidation(CommandResultValidation.None).ExecuteBufferedAsync(ct);
        if (r.ExitCode != 0 && !mayFail)
        {
            throw new DsvmException($"{iptables} {string.Join(' ', args)} failed: {r.StandardError.Trim()}");
        }

        return r.ExitCode == 0;
    }
}
