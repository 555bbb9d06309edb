using System.Net;
using System.Net.Http.Json;
using Dsvm.Hub.Services;
using Microsoft.Extensions.DependencyInjection;

namespace Dsvm.Hub.Tests;

public sealed class QuotaTests : HubTestBase
{
    [Fact]
    public async Task The_workspace_count_quota_refuses_one_more_with_403()
    {
        var alice = await UserTokenClientAsync("alice");
        var admin = await AdminAsync();
        var user = await (await admin.Http.PutAsJsonAsync("api/v1/users/alice/quota", new { maxWorkspaces = 1 }).Expect(HttpStatusCode.OK)).JsonAsync();
        Assert.Equal(1, user.GetProperty("quota").GetProperty("maxWorkspaces").GetInt32());

        await StartRunningAsync(alice, "ws1");
        var p = await alice.PostAsJsonAsync("api/v1/workspaces", new { name = "ws2", environment = "minimal", size = "small" }).ExpectProblem(HttpStatusCode.Forbidden);
        Assert.Contains("quota", p.Str("detail"), StringComparison.Ordinal);
        Assert.Single(World.Backend.Starts);

        // A stopped workspace still counts; starting it again is not "one more".
        await alice.PostAsync("api/v1/workspaces/alice/ws1/stop", null).Expect(HttpStatusCode.OK);
        await alice.PostAsJsonAsync("api/v1/workspaces", new { name = "ws2", environment = "minimal", size = "small" }).ExpectProblem(HttpStatusCode.Forbidden);
        await alice.PostAsync("api/v1/workspaces/alice/ws1/start?wait=true", null).Expect(HttpStatusCode.OK);
    }

    [Fact]
    public async Task Concurrent_starts_cannot_slip_past_the_workspace_count_quota()
    {
        var alice = await UserTokenClientAsync("alice");
        var admin = await AdminAsync();
        await admin.Http.PutAsJsonAsync("api/v1/users/alice/quota", new { maxWorkspaces = 1 }).Expect(HttpStatusCode.OK);
        var answers = await Task.WhenAll(Enumerable.Range(1, 6).Select(i =>
            alice.PostAsJsonAsync("api/v1/workspaces", new { name = $"ws{i}", environment = "minimal", size = "small" })));
        Assert.Equal(1, answers.Count(a => a.StatusCode == HttpStatusCode.Accepted));
        Assert.Equal(5, answers.Count(a => a.StatusCode == HttpStatusCode.Forbidden));
        var started = answers.Single(a => a.StatusCode == HttpStatusCode.Accepted);
        await WaitForStateAsync(alice, started.Headers.Location!.OriginalString, "running");
        var list = await (await alice.GetAsync("api/v1/workspaces").Expect(HttpStatusCode.OK)).JsonAsync();
        Assert.Equal(1, list.GetArrayLength());
    }

    [Fact]
    public async Task Concurrent_starts_cannot_slip_past_the_vcpu_quota()
    {
        var alice = await UserTokenClientAsync("alice");
        var admin = await AdminAsync();
        await admin.Http.PutAsJsonAsync("api/v1/users/alice/quota", new { maxWorkspaces = 10, maxVcpus = 2 }).Expect(HttpStatusCode.OK);
        var answers = await Task.WhenAll(Enumerable.Range(1, 6).Select(i =>
            alice.PostAsJsonAsync("api/v1/workspaces", new { name = $"ws{i}", environment = "minimal", size = "small" })));
        Assert.Equal(2, answers.Count(a => a.StatusCode == HttpStatusCode.Accepted));
        Assert.Equal(4, answers.Count(a => a.StatusCode == HttpStatusCode.Forbidden));
    }

    [Fact]
    public async Task The_vcpu_quota_refuses_a_start_that_would_exceed_it_with_403()
    {
        var alice = await UserTokenClientAsync("alice");
        var admin = await AdminAsync();
        await admin.Http.PutAsJsonAsync("api/v1/users/alice/quota", new { maxWorkspaces = 5, maxVcpus = 1.5 }).Expect(HttpStatusCode.OK);

        await StartRunningAsync(alice, "ws1", "small");
        var p = await alice.PostAsJsonAsync("api/v1/workspaces", new { name = "ws2", environment = "minimal", size = "small" }).ExpectProblem(HttpStatusCode.Forbidden);
        Assert.Contains("quota", p.Str("detail"), StringComparison.Ordinal);
        Assert.Contains("vCPU", p.Str("detail"), StringComparison.Ordinal);

        // Resizing past the quota is refused too, and leaves the workspace running.
        await alice.PostAsJsonAsync("api/v1/workspaces/alice/ws1/resize", new { size = "medium" }).ExpectProblem(HttpStatusCode.Forbidden);
        var w = await (await alice.GetAsync("api/v1/workspaces/alice/ws1").Expect(HttpStatusCode.OK)).JsonAsync();
        Assert.Equal("running", w.Str("state"));
        Assert.Equal("small", w.Str("size"));
    }
}

public sealed class GlobalStartLimitTests : HubTestBase
{
    internal override HubOptions Options(HubOptions defaults) => defaults with { MaxConcurrentStarts = 1 };

    [Fact]
    public async Task A_start_beyond_the_concurrent_limit_is_429_with_Retry_After()
    {
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        World.Backend.StartGate = gate;
        var alice = await UserTokenClientAsync("alice");
        var bob = await UserTokenClientAsync("bob");

        await alice.PostAsJsonAsync("api/v1/workspaces", new { name = "ws1", environment = "minimal", size = "small" }).Expect(HttpStatusCode.Accepted);
        var r = await bob.PostAsJsonAsync("api/v1/workspaces", new { name = "ws2", environment = "minimal", size = "small" });
        Assert.Equal(HttpStatusCode.TooManyRequests, r.StatusCode);
        Assert.NotNull(r.Headers.RetryAfter?.Delta);
        Assert.True(r.Headers.RetryAfter!.Delta >= TimeSpan.FromSeconds(1));
        Assert.Equal("application/problem+json", r.Content.Headers.ContentType?.MediaType);

        // Nothing was recorded for the refused start.
        await bob.GetAsync("api/v1/workspaces/bob/ws2").ExpectProblem(HttpStatusCode.NotFound);

        gate.SetResult();
        await WaitForStateAsync(alice, "api/v1/workspaces/alice/ws1", "running");
        await Hub.App.Services.GetRequiredService<HubWorkspaces>().WaitAsync("alice", "ws1");
        var health = await (await Hub.Anonymous().GetAsync("healthz").Expect(HttpStatusCode.OK)).JsonAsync();
        Assert.Equal(0, health.GetProperty("startsInFlight").GetInt32());
        await bob.PostAsJsonAsync("api/v1/workspaces?wait=true", new { name = "ws2", environment = "minimal", size = "small" }).Expect(HttpStatusCode.OK);
    }
}
