using System.Net;
using System.Net.NetworkInformation;
using System.Net.Sockets;
using CliWrap;
using CliWrap.Buffered;

namespace Dsvm.Testing;

/// <summary>The local engine's default bridge (docker0), as the tests that probe the host from a container need it.</summary>
public static class DefaultBridge
{
    /// <summary>
    /// The bridge's gateway: the one the engine's IPAM configuration names, or, where it names none (a fresh engine
    /// lists only the subnet), the bridge interface's own IPv4 address, which is the gateway its containers use.
    /// </summary>
    public static async Task<IPAddress> GatewayAsync(CancellationToken ct = default)
    {
        var r = await Cli.Wrap("docker")
            .WithArguments(["network", "inspect", "bridge", "--format", "{{range .IPAM.Config}}{{.Gateway}}{{end}}|{{index .Options \"com.docker.network.bridge.name\"}}"])
            .WithValidation(CommandResultValidation.None).ExecuteBufferedAsync(ct);
        var fields = r.StandardOutput.Trim().Split('|');
        if (r.ExitCode != 0 || fields.Length != 2)
        {
            throw new InvalidOperationException($"docker network inspect bridge failed ({r.ExitCode}): {r.StandardError.Trim()}");
        }

        if (IPAddress.TryParse(fields[0], out var configured))
        {
            return configured;
        }

        var name = fields[1] is { Length: > 0 } n && n != "<no value>" ? n : "docker0";
        return NetworkInterface.GetAllNetworkInterfaces().FirstOrDefault(i => i.Name == name)?.GetIPProperties().UnicastAddresses
                   .Select(a => a.Address).FirstOrDefault(a => a.AddressFamily == AddressFamily.InterNetwork)
               ?? throw new InvalidOperationException($"the engine's default bridge names no gateway and interface {name} has no IPv4 address");
    }
}
