using System.Net;

namespace Dsvm.Hub.Tests;

public sealed class RestartTests : HubTestBase
{
    [Fact]
    public async Task A_restarted_hub_still_routes_to_workspaces_that_kept_running()
    {
        var alice = await UserAsync("alice");
        var secret = (await CreateTokenAsync(alice)).Str("token");
        await StartRunningAsync(alice.Http, "ws1");
        var server = World.Backend.ServerFor("alice", "ws1")!;
        var token = World.Backend.TokenFor("alice", "ws1");

        // Hub A goes away; the workspace (the fake Jupyter) keeps running, as a container would.
        await Hub.DisposeAsync();
        Assert.Same(server, World.Backend.ServerFor("alice", "ws1"));

        var hubB = await World.StartHubAsync();
        Assert.Null(hubB.GeneratedPassword);
        var c = hubB.TokenClient(secret);
        var echo = await (await c.GetAsync("user/alice/ws1/api/contents").Expect(HttpStatusCode.OK)).JsonAsync();
        Assert.Equal($"token {token}", echo.Str("authorization"));
        Assert.Contains(server.Requests, r => r == "GET /user/alice/ws1/api/contents");
        var w = await (await c.GetAsync("api/v1/workspaces/alice/ws1").Expect(HttpStatusCode.OK)).JsonAsync();
        Assert.Equal("running", w.Str("state"));
        Assert.Single(World.Backend.Starts);

        // A password login on the new hub reaches it too.
        var session = hubB.NewClient();
        await session.LoginAsync("alice", PasswordOf("alice")).Expect(HttpStatusCode.OK);
        await session.Http.GetAsync("user/alice/ws1/lab").Expect(HttpStatusCode.OK);
    }

    [Fact]
    public async Task A_restarted_hub_marks_workspaces_that_died_meanwhile_as_stopped()
    {
        var alice = await UserAsync("alice");
        var secret = (await CreateTokenAsync(alice)).Str("token");
        var w = await StartRunningAsync(alice.Http, "ws1");
        await Hub.DisposeAsync();
        var record = await World.Store.FindAsync("alice", "ws1", CancellationToken.None);
        await World.Backend.StopAsync(record!.Handle, CancellationToken.None);

        var hubB = await World.StartHubAsync();
        var c = hubB.TokenClient(secret);
        await c.GetAsync("user/alice/ws1/lab").Expect(HttpStatusCode.ServiceUnavailable);
        var after = await (await c.GetAsync("api/v1/workspaces/alice/ws1").Expect(HttpStatusCode.OK)).JsonAsync();
        Assert.Equal("stopped", after.Str("state"));
        Assert.Equal("ws1", w.Str("name"));
    }
}
