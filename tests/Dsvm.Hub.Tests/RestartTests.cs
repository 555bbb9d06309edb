using System.Net;
using System.Net.Http.Json;
using Dsvm.Core.Workspaces;
using Dsvm.Hub.Services;
using Microsoft.Extensions.DependencyInjection;

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

public sealed class AcceptedStartTests : HubTestBase
{
    [Fact]
    public async Task An_accepted_start_is_recorded_before_the_202()
    {
        var alice = await UserAsync("alice");
        World.Backend.StartGate = new TaskCompletionSource();
        var r = await alice.Http.PostAsJsonAsync("api/v1/workspaces", new { name = "ws1", environment = "minimal", size = "small" }).Expect(HttpStatusCode.Accepted);

        // The start is still held in the engine, and the record is there already.
        var record = await World.Store.FindAsync("alice", "ws1", CancellationToken.None);
        Assert.NotNull(record);
        Assert.Contains(record.State, new[] { WorkspaceState.Pending, WorkspaceState.Starting });
        Assert.Equal("ws1", (await r.JsonAsync()).Str("name"));
        World.Backend.StartGate.SetResult();
    }

    [Fact]
    public async Task A_start_accepted_by_a_hub_that_died_is_finished_by_the_next_hub()
    {
        var alice = await UserAsync("alice");
        var secret = (await CreateTokenAsync(alice)).Str("token");
        await KillAfterAcceptAsync("alice");

        // The replacement hub takes the accepted start over: the client's 202 ends in a running workspace.
        var hubB = await World.StartHubAsync();
        var c = hubB.TokenClient(secret);
        var w = await WaitForStateAsync(c, "api/v1/workspaces/alice/ws1", "running");
        Assert.Equal("minimal", w.Str("environment"));
        Assert.Single(World.Backend.Starts);
        await c.GetAsync("user/alice/ws1/api/contents").Expect(HttpStatusCode.OK);
    }

    [Fact]
    public async Task An_accepted_start_past_its_deadline_is_failed_not_started()
    {
        var alice = await UserAsync("alice");
        var secret = (await CreateTokenAsync(alice)).Str("token");
        await KillAfterAcceptAsync("alice");

        // The hub was down for longer than a start may take: the user was told it failed, nothing starts late.
        World.Time.Advance(TimeSpan.FromMinutes(10));
        var hubB = await World.StartHubAsync();
        var c = hubB.TokenClient(secret);
        var failed = await (await c.GetAsync("api/v1/workspaces/alice/ws1").Expect(HttpStatusCode.OK)).JsonAsync();
        Assert.Equal("failed", failed.Str("state"));
        Assert.Empty(World.Backend.Starts);
    }

    /// <summary>What a hub killed right after the 202 leaves: the accepted record, nothing in the engine, no lock holder.</summary>
    private async Task KillAfterAcceptAsync(string owner)
    {
        var user = await Hub.App.Services.GetRequiredService<Dsvm.Hub.Data.Accounts>().FindUserAsync(owner, CancellationToken.None);
        await Hub.DisposeAsync();
        var now = World.Time.GetUtcNow();
        await World.Store.SaveAsync(new Workspace
        {
            Id = "ws-00000000abcd", Name = "ws1", Owner = owner, OwnerId = user!.Id, Environment = "minimal", Image = "dsvm/minimal:test",
            Size = "small", Backend = World.Backend.Name, HomeVolume = "dsvm-home-h-00000000abcd", HomeId = "h-00000000abcd", Token = "t",
            State = WorkspaceState.Pending, CreatedAt = now, UpdatedAt = now,
        }, CancellationToken.None);
    }
}
