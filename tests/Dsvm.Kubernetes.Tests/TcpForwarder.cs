using System.Net;
using System.Net.Sockets;

namespace Dsvm.Kubernetes.Tests;

/// <summary>
/// Forwards TCP connections from one local address (a free port on it) to a port on 127.0.0.1: how a pod on the lab's
/// bridge reaches a server of the test that listens on loopback only (the registry), through the bridge's gateway
/// address, which only the host and its containers reach.
/// </summary>
public sealed class TcpForwarder : IAsyncDisposable
{
    private readonly TcpListener _listener;
    private readonly int _target;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _accepting;

    private TcpForwarder(IPAddress address, int target)
    {
        _listener = new TcpListener(address, 0);
        _listener.Start();
        _target = target;
        _accepting = AcceptAsync();
    }

    /// <summary>The address and port it listens on, <c>ADDRESS:PORT</c>.</summary>
    public string Endpoint => ((IPEndPoint)_listener.LocalEndpoint).ToString();

    public static TcpForwarder Start(IPAddress address, int targetPort) => new(address, targetPort);

    private async Task AcceptAsync()
    {
        try
        {
            while (!_stop.IsCancellationRequested)
            {
                var inbound = await _listener.AcceptTcpClientAsync(_stop.Token);
                _ = PipeAsync(inbound);
            }
        }
        catch (Exception ex) when (ex is OperationCanceledException or SocketException or ObjectDisposedException)
        {
            // Stopped.
        }
    }

    private async Task PipeAsync(TcpClient inbound)
    {
        using (inbound)
        using (var outbound = new TcpClient())
        {
            try
            {
                await outbound.ConnectAsync(IPAddress.Loopback, _target, _stop.Token);
                using var done = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
                var a = inbound.GetStream();
                var b = outbound.GetStream();
                await Task.WhenAny(a.CopyToAsync(b, done.Token), b.CopyToAsync(a, done.Token));
                await done.CancelAsync();
            }
            catch (Exception ex) when (ex is OperationCanceledException or SocketException or IOException or ObjectDisposedException)
            {
                // One side went away.
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Stop();
        await _accepting;
        _stop.Dispose();
    }
}
