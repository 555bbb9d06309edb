using System.Net;
using System.Net.Http.Json;
using Dsvm.Core;

namespace Dsvm.Hub.Tests;

public sealed class WorkspaceApiTests : HubTestBase
{
    private static object Ws(string name, string size = "small", string environment = "minimal") => new { name, environment, size };

    [Fact]
    public async Task Start_answers_202_with_a_Location_that_reaches_running()
    {
        var alice = await UserTokenClientAsync("alice");
        var r = await alice.PostAsJsonAsync("api/v1/workspaces", Ws("ws1")).Expect(HttpStatusCode.Accepted);
        Assert.Equal("/api/v1/workspaces/alice/ws1", r.Headers.Location?.OriginalString);
        var body = await r.JsonAsync();
        Assert.Equal("ws1", body.Str("name"));
        Assert.Equal("alice", body.Str("owner"));

        // The Location exists from the first poll on (never a 404 while the start is under way).
        var w = await WaitForStateAsync(alice, r.Headers.Location!.OriginalString, "running");
        Assert.Equal("minimal", w.Str("environment"));
        Assert.Equal("small", w.Str("size"));
        Assert.Equal("/user/alice/ws1/lab", w.Str("url"));
    }

    [Fact]
    public async Task The_Location_answers_while_the_start_waits_for_the_workspaces_lock()
    {
        var alice = await UserTokenClientAsync("alice");
        // Another command (a CLI on the same host) is working on alice/ws1: the start queues behind it.
        var gate = await FileGate.AcquireAsync(Path.Combine(World.Paths.Data, "locks", "alice.ws1.lock"), CancellationToken.None);
        HttpResponseMessage r;
        try
        {
            r = await alice.PostAsJsonAsync("api/v1/workspaces", Ws("ws1")).Expect(HttpStatusCode.Accepted);
            await Task.Delay(300);
            var pending = await (await alice.GetAsync(r.Headers.Location!.OriginalString).Expect(HttpStatusCode.OK)).JsonAsync();
            Assert.Equal("pending", pending.Str("state"));
            var list = await (await alice.GetAsync("api/v1/workspaces").Expect(HttpStatusCode.OK)).JsonAsync();
            Assert.Contains(list.EnumerateArray(), w => w.Str("name") == "ws1");
        }
        finally
        {
            await gate.DisposeAsync();
        }

        await WaitForStateAsync(alice, r.Headers.Location!.OriginalString, "running");
    }

    [Fact]
    public async Task Lists_answer_from_the_records_without_asking_the_engine()
    {
        var alice = await UserTokenClientAsync("alice");
        var bob = await UserTokenClientAsync("bob");
        var admin = (await AdminAsync()).Http;
        await StartRunningAsync(alice, "ws1");
        await StartRunningAsync(alice, "ws2");
        await StartRunningAsync(bob, "ws1");
        var before = World.Backend.EngineReads;

        for (var i = 0; i < 5; i++)
        {
            var own = await (await alice.GetAsync("api/v1/workspaces").Expect(HttpStatusCode.OK)).JsonAsync();
            Assert.Equal(["ws1", "ws2"], own.EnumerateArray().Select(w => w.Str("name")).ToArray());
            Assert.All(own.EnumerateArray(), w => Assert.Equal("running", w.Str("state")));
            var all = await (await admin.GetAsync("api/v1/workspaces?all=true").Expect(HttpStatusCode.OK)).JsonAsync();
            Assert.Equal(["alice/ws1", "alice/ws2", "bob/ws1"], all.EnumerateArray().Select(w => w.Str("owner") + "/" + w.Str("name")).ToArray());
        }

        Assert.Equal(before, World.Backend.EngineReads);
    }

    [Fact]
    public async Task Start_with_wait_answers_200_running()
    {
        var alice = await UserTokenClientAsync("alice");
        var w = await StartRunningAsync(alice, "ws1");
        Assert.Equal("ws1", w.Str("name"));
        Assert.NotNull(World.Backend.ServerFor("alice", "ws1"));
    }

    [Fact]
    public async Task The_list_shows_the_workspace_and_never_its_token()
    {
        var alice = await UserTokenClientAsync("alice");
        await StartRunningAsync(alice, "ws1");
        var token = World.Backend.TokenFor("alice", "ws1");

        var list = await (await alice.GetAsync("api/v1/workspaces").Expect(HttpStatusCode.OK)).Content.ReadAsStringAsync();
        Assert.Contains("\"ws1\"", list, StringComparison.Ordinal);
        Assert.DoesNotContain(token, list, StringComparison.Ordinal);
        var one = await (await alice.GetAsync("api/v1/workspaces/alice/ws1").Expect(HttpStatusCode.OK)).Content.ReadAsStringAsync();
        Assert.DoesNotContain(token, one, StringComparison.Ordinal);
        Assert.DoesNotContain("token", one, StringComparison.OrdinalIgnoreCase);
        var admin = await AdminAsync();
        var all = await (await admin.Http.GetAsync("api/v1/workspaces?all=true").Expect(HttpStatusCode.OK)).Content.ReadAsStringAsync();
        Assert.Contains("\"alice\"", all, StringComparison.Ordinal);
        Assert.DoesNotContain(token, all, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Listing_every_workspace_needs_admin()
    {
        var alice = await UserTokenClientAsync("alice");
        await alice.GetAsync("api/v1/workspaces?all=true").ExpectProblem(HttpStatusCode.Forbidden);
    }

    [Fact]
    public async Task Stop_then_start_runs_again()
    {
        var alice = await UserTokenClientAsync("alice");
        await StartRunningAsync(alice, "ws1");

        var stopped = await (await alice.PostAsync("api/v1/workspaces/alice/ws1/stop", null).Expect(HttpStatusCode.OK)).JsonAsync();
        Assert.Equal("stopped", stopped.Str("state"));
        Assert.Null(World.Backend.ServerFor("alice", "ws1"));

        var r = await alice.PostAsync("api/v1/workspaces/alice/ws1/start", null).Expect(HttpStatusCode.Accepted);
        Assert.Equal("/api/v1/workspaces/alice/ws1", r.Headers.Location?.OriginalString);
        await WaitForStateAsync(alice, "api/v1/workspaces/alice/ws1", "running");
        Assert.NotNull(World.Backend.ServerFor("alice", "ws1"));
    }

    /// <summary>
    /// Resizing a stopped workspace only changes its size: with <c>?wait=true</c> (what <c>dsvm resize</c> sends) that
    /// is a success, 200 with the stopped workspace at its new size, not 422 "the workspace is Stopped" (found by the
    /// end-to-end test on the Kubernetes lab, HubOnClusterTests). The next start runs it at that size.
    /// </summary>
    [Fact]
    public async Task Resizing_a_stopped_workspace_with_wait_answers_200_and_the_next_start_uses_the_size()
    {
        var alice = await UserTokenClientAsync("alice");
        await StartRunningAsync(alice, "ws1");
        await alice.PostAsync("api/v1/workspaces/alice/ws1/stop", null).Expect(HttpStatusCode.OK);

        var resized = await (await alice.PostAsJsonAsync("api/v1/workspaces/alice/ws1/resize?wait=true", new { size = "medium" }).Expect(HttpStatusCode.OK)).JsonAsync();
        Assert.Equal(("stopped", "medium"), (resized.Str("state"), resized.Str("size")));
        Assert.Null(World.Backend.ServerFor("alice", "ws1"));

        var started = await (await alice.PostAsync("api/v1/workspaces/alice/ws1/start?wait=true", null).Expect(HttpStatusCode.OK)).JsonAsync();
        Assert.Equal(("running", "medium"), (started.Str("state"), started.Str("size")));
    }

    [Fact]
    public async Task A_restarting_workspace_never_reads_as_stopped()
    {
        var alice = await UserTokenClientAsync("alice");
        await StartRunningAsync(alice, "ws1");
        await alice.PostAsync("api/v1/workspaces/alice/ws1/stop", null).Expect(HttpStatusCode.OK);
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        World.Backend.StartGate = gate;
        var r = await (await alice.PostAsync("api/v1/workspaces/alice/ws1/start", null).Expect(HttpStatusCode.Accepted)).JsonAsync();
        Assert.Equal("starting", r.Str("state"));
        var polled = await (await alice.GetAsync("api/v1/workspaces/alice/ws1").Expect(HttpStatusCode.OK)).JsonAsync();
        Assert.Equal("starting", polled.Str("state"));
        gate.SetResult();
        await WaitForStateAsync(alice, "api/v1/workspaces/alice/ws1", "running");
    }

    [Fact]
    public async Task Starting_an_existing_name_with_another_size_is_409_at_once()
    {
        var alice = await UserTokenClientAsync("alice");
        await StartRunningAsync(alice, "ws1");
        var p = await alice.PostAsJsonAsync("api/v1/workspaces", Ws("ws1", size: "medium")).ExpectProblem(HttpStatusCode.Conflict);
        Assert.Contains("resize", p.Str("detail"), StringComparison.Ordinal);
        Assert.Single(World.Backend.Starts);
        // The same request again is fine: the workspace is simply running.
        await StartRunningAsync(alice, "ws1");
    }

    [Fact]
    public async Task Resize_runs_with_the_new_size()
    {
        var alice = await UserTokenClientAsync("alice");
        await StartRunningAsync(alice, "ws1");
        var r = await alice.PostAsJsonAsync("api/v1/workspaces/alice/ws1/resize?wait=true", new { size = "medium" }).Expect(HttpStatusCode.OK);
        var w = await r.JsonAsync();
        Assert.Equal("running", w.Str("state"));
        Assert.Equal("medium", w.Str("size"));
        Assert.Equal("medium", World.Backend.Starts.Last().Size.Name);
    }

    [Fact]
    public async Task Resize_without_wait_answers_202_and_reaches_running_with_the_new_size()
    {
        var alice = await UserTokenClientAsync("alice");
        await StartRunningAsync(alice, "ws1");
        await alice.PostAsJsonAsync("api/v1/workspaces/alice/ws1/resize", new { size = "medium" }).Expect(HttpStatusCode.Accepted);
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        while (true)
        {
            var w = await (await alice.GetAsync("api/v1/workspaces/alice/ws1", timeout.Token).Expect(HttpStatusCode.OK)).JsonAsync();
            if (w.Str("state") == "running" && w.Str("size") == "medium")
            {
                break;
            }

            await Task.Delay(50, timeout.Token);
        }
    }

    [Fact]
    public async Task Delete_answers_204_and_then_the_workspace_is_404()
    {
        var alice = await UserTokenClientAsync("alice");
        await StartRunningAsync(alice, "ws1");
        await alice.DeleteAsync("api/v1/workspaces/alice/ws1").Expect(HttpStatusCode.NoContent);
        await alice.GetAsync("api/v1/workspaces/alice/ws1").ExpectProblem(HttpStatusCode.NotFound);
        Assert.Null(World.Backend.ServerFor("alice", "ws1"));
    }

    [Fact]
    public async Task An_unknown_environment_is_404()
    {
        var alice = await UserTokenClientAsync("alice");
        var p = await alice.PostAsJsonAsync("api/v1/workspaces", Ws("ws1", environment: "nope")).ExpectProblem(HttpStatusCode.NotFound);
        Assert.Contains("nope", p.Str("detail"), StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_unknown_size_is_404()
    {
        var alice = await UserTokenClientAsync("alice");
        var p = await alice.PostAsJsonAsync("api/v1/workspaces", Ws("ws1", size: "huge")).ExpectProblem(HttpStatusCode.NotFound);
        Assert.Contains("huge", p.Str("detail"), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_bad_name_is_400()
    {
        var alice = await UserTokenClientAsync("alice");
        await alice.PostAsJsonAsync("api/v1/workspaces", Ws("Bad_Name")).ExpectProblem(HttpStatusCode.BadRequest);
        Assert.Empty(World.Backend.Starts);
    }

    [Fact]
    public async Task Another_users_workspace_is_404()
    {
        var alice = await UserTokenClientAsync("alice");
        var bob = await UserTokenClientAsync("bob");
        await StartRunningAsync(alice, "ws1");
        await bob.GetAsync("api/v1/workspaces/alice/ws1").ExpectProblem(HttpStatusCode.NotFound);
        await bob.PostAsync("api/v1/workspaces/alice/ws1/stop", null).ExpectProblem(HttpStatusCode.NotFound);
        await bob.DeleteAsync("api/v1/workspaces/alice/ws1").ExpectProblem(HttpStatusCode.NotFound);
        var bobs = await (await bob.GetAsync("api/v1/workspaces").Expect(HttpStatusCode.OK)).JsonAsync();
        Assert.Equal(0, bobs.GetArrayLength());
        Assert.NotNull(World.Backend.ServerFor("alice", "ws1"));
    }

    [Fact]
    public async Task Environments_and_sizes_are_listed()
    {
        var alice = await UserTokenClientAsync("alice");
        var envs = await (await alice.GetAsync("api/v1/environments").Expect(HttpStatusCode.OK)).JsonAsync();
        Assert.Equal("minimal", Assert.Single(envs.EnumerateArray()).Str("name"));
        var sizes = await (await alice.GetAsync("api/v1/sizes").Expect(HttpStatusCode.OK)).JsonAsync();
        Assert.Contains(sizes.EnumerateArray(), s => s.Str("name") == "small");
    }
}
