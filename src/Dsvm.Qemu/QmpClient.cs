using System.Net.Sockets;
using System.Text;
using System.Text.Json;

namespace Dsvm.Qemu;

/// <summary>A minimal QEMU Machine Protocol client over the VM's unix socket: one command per connection.</summary>
public static class QmpClient
{
    /// <summary>Sends <paramref name="command"/> after the capabilities handshake and returns its "return" value.</summary>
    public static async Task<JsonElement> ExecuteAsync(string socketPath, string command, CancellationToken ct)
    {
        using var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        await socket.ConnectAsync(new UnixDomainSocketEndPoint(socketPath), ct);
        await using var stream = new NetworkStream(socket, ownsSocket: false);
        using var reader = new StreamReader(stream, Encoding.UTF8);
        await using var writer = new StreamWriter(stream, new UTF8Encoding(false)) { AutoFlush = true, NewLine = "\n" };
        await ReadReplyAsync(reader, greeting: true, ct);
        await writer.WriteLineAsync("{\"execute\":\"qmp_capabilities\"}");
        await ReadReplyAsync(reader, greeting: false, ct);
        await writer.WriteLineAsync(JsonSerializer.Serialize(new { execute = command }));
        return await ReadReplyAsync(reader, greeting: false, ct);
    }

    private static async Task<JsonElement> ReadReplyAsync(StreamReader reader, bool greeting, CancellationToken ct)
    {
        while (true)
        {
            var line = await reader.ReadLineAsync(ct) ?? throw new IOException("the QMP socket closed");
            using var doc = JsonDocument.Parse(line);
            var root = doc.RootElement;
            if (greeting && root.TryGetProperty("QMP", out _))
            {
                return root.Clone();
            }

            if (root.TryGetProperty("return", out var value))
            {
                return value.Clone();
            }

            if (root.TryGetProperty("error", out var error))
            {
                throw new IOException($"QMP error: {error.GetProperty("desc").GetString()}");
            }

            // An asynchronous event ({"event": ...}): skip it.
        }
    }
}
