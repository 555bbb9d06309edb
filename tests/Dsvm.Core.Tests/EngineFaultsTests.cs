using System.Net.Sockets;
using Dsvm.Core.Workspaces;

namespace Dsvm.Core.Tests;

/// <summary>Which exceptions count as a workspace engine's fault (CLI one line, hub 503) and which do not.</summary>
public sealed class EngineFaultsTests
{
    private static Exception Thrown(Func<Exception> make)
    {
        try
        {
            throw make();
        }
        catch (Exception ex)
        {
            return ex;
        }
    }

    [Fact]
    public void A_connection_fault_of_another_client_is_not_an_engine_fault()
    {
        var ex = Thrown(() => new HttpRequestException("Connection refused", new SocketException((int)SocketError.ConnectionRefused)));
        Assert.Null(EngineFaults.EngineOf(ex));
        Assert.Null(EngineFaults.EngineOf(new InvalidOperationException("x")));
    }

    [Fact]
    public void The_reason_is_the_innermost_messages_on_one_line()
    {
        var ex = new HttpRequestException("Connection failed", new SocketException((int)SocketError.ConnectionRefused));
        Assert.True(EngineFaults.IsUnreachable(ex));
        var reason = EngineFaults.Reason(ex);
        Assert.StartsWith("Connection failed: ", reason, StringComparison.Ordinal);
        Assert.DoesNotContain('\n', reason);
        Assert.False(EngineFaults.IsUnreachable(new InvalidOperationException("x")));
    }

    [Fact]
    public void What_users_read_names_the_engine_kind_never_its_endpoint()
    {
        Assert.Equal("the workspace engine is not reachable",
            EngineFaults.ForUsers(new HttpRequestException("Connection refused (/run/secret.sock)", new SocketException((int)SocketError.ConnectionRefused))));
        Assert.Equal("the quota is used up", EngineFaults.ForUsers(new DsvmException("the quota is used up\nmore")));
        Assert.Null(EngineFaults.ForUsers(new InvalidOperationException("x")));
    }
}
