using System.Net;
using Dsvm.Core.Workspaces;
using Dsvm.Docker;
using Microsoft.Extensions.DependencyInjection;

namespace Dsvm.Hub.Tests;

/// <summary>
/// An engine that stops answering mid-life (a real Docker.DotNet client on a socket that does not exist): the request
/// is answered 503 with ProblemDetails naming the engine, never a 500 (issue 12).
/// </summary>
public sealed class EngineFaultTests : HubTestBase
{
    private EngineDownBackend? _backend;

    internal override HubOptions Options(HubOptions defaults)
    {
        World.WrapBackend = b => _backend = new EngineDownBackend(b);
        return defaults;
    }

    [Fact]
    public async Task An_unreachable_engine_is_a_503_naming_it_never_a_500()
    {
        var alice = await UserTokenClientAsync("alice");
        await StartRunningAsync(alice, "ws1");
        _backend!.Down = true;

        var p = await alice.GetAsync("api/v1/workspaces/alice/ws1/logs").ExpectProblem(HttpStatusCode.ServiceUnavailable);
        Assert.Contains("the Docker engine is not reachable", p.Str("detail"), StringComparison.Ordinal);
        Assert.DoesNotContain("Exception", p.ToString(), StringComparison.Ordinal);
        Assert.DoesNotContain("nonexistent", p.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_stop_the_engine_fails_shows_stopping_with_why_and_ends_stopped_once_the_engine_answers()
    {
        var alice = await UserTokenClientAsync("alice");
        await StartRunningAsync(alice, "ws1");
        _backend!.Down = true;

        var p = await alice.PostAsync("api/v1/workspaces/alice/ws1/stop", null).ExpectProblem(HttpStatusCode.ServiceUnavailable);
        Assert.Contains("the Docker engine is not reachable", p.Str("detail"), StringComparison.Ordinal);

        // Meanwhile the workspace says what its stop waits for (before: Stopping and nothing else until it finished).
        var shown = await (await alice.GetAsync("api/v1/workspaces/alice/ws1").Expect(HttpStatusCode.OK)).JsonAsync();
        Assert.Equal("stopping", shown.Str("state"));
        Assert.StartsWith("stop not finished: the Docker engine is not reachable", shown.Str("lastError"), StringComparison.Ordinal);
        Assert.Contains("finished when the engine answers again", shown.Str("lastError"), StringComparison.Ordinal);

        _backend.Down = false;
        var again = await (await alice.PostAsync("api/v1/workspaces/alice/ws1/stop", null).Expect(HttpStatusCode.OK)).JsonAsync();
        Assert.Equal("stopped", again.Str("state"));
        Assert.False(again.TryGetProperty("lastError", out var e) && e.ValueKind == System.Text.Json.JsonValueKind.String && e.GetString()!.StartsWith("stop not finished", StringComparison.Ordinal), e.ToString());
    }
}

/// <summary>
/// A reconcile pass whose engine client times out (an HTTP client's timeout is a <see cref="TaskCanceledException"/>,
/// not the hub's own stopping) must not end the reconcile loop, let alone the hub: the next pass runs.
/// </summary>
public sealed class ReconcileTimeoutTests : HubTestBase
{
    private TimingOutListBackend? _backend;

    internal override HubOptions Options(HubOptions defaults)
    {
        World.WrapBackend = b => _backend = new TimingOutListBackend(b);
        return defaults with { ReconcileInterval = TimeSpan.FromMilliseconds(50) };
    }

    [Fact]
    public async Task A_timed_out_engine_call_in_a_reconcile_pass_leaves_the_loop_and_the_hub_running()
    {
        var alice = await UserTokenClientAsync("alice");
        await StartRunningAsync(alice, "ws1");
        var before = _backend!.Lists;
        _backend.TimeOut = true;
        using var bound = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        while (_backend.Lists < before + 3)
        {
            // Before the fix the first timed-out pass ended the loop (and with it the hub): no third pass came.
            await Task.Delay(50, bound.Token);
        }

        Assert.False(Hub.App.Services.GetRequiredService<Microsoft.Extensions.Hosting.IHostApplicationLifetime>().ApplicationStopping.IsCancellationRequested);
        await alice.GetAsync("api/v1/workspaces").Expect(HttpStatusCode.OK);
    }
}

/// <summary>The fake backend, whose listing of labelled objects times out as an HTTP client does once <see cref="TimeOut"/>.</summary>
internal sealed class TimingOutListBackend(IWorkspaceBackend inner) : Dsvm.Testing.DelegatingWorkspaceBackend(inner)
{
    private int _lists;

    public bool TimeOut { get; set; }

    public int Lists => Volatile.Read(ref _lists);

    public override async IAsyncEnumerable<ManagedResource> ListManagedAsync([System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken ct)
    {
        Interlocked.Increment(ref _lists);
        if (TimeOut)
        {
            throw new TaskCanceledException("The request was canceled due to the configured HttpClient.Timeout of 30 seconds elapsing.");
        }

        await foreach (var r in Inner.ListManagedAsync(ct))
        {
            yield return r;
        }
    }
}

/// <summary>The fake backend, whose logs and stops go to a Docker engine that is not there once <see cref="Down"/>.</summary>
internal sealed class EngineDownBackend(IWorkspaceBackend inner) : Dsvm.Testing.DelegatingWorkspaceBackend(inner)
{
    private readonly DockerWorkspaceBackend _missing = new(new DockerBackendOptions { Endpoint = new Uri("unix:///nonexistent/dsvm-test-docker.sock") }, new NoGpus());

    public bool Down { get; set; }

    private IWorkspaceBackend Current => Down ? _missing : Inner;

    public override Task<WorkspaceLaunch> StartAsync(WorkspaceStartRequest request, IProgress<WorkspaceProgress>? progress, CancellationToken ct) => Current.StartAsync(request, progress, ct);

    public override Task StopAsync(WorkspaceHandle handle, CancellationToken ct) => Current.StopAsync(handle, ct);

    public override Task DeleteAsync(WorkspaceHandle handle, string homeVolume, bool keepHome, CancellationToken ct) => Current.DeleteAsync(handle, homeVolume, keepHome, ct);

    public override Task<string> GetLogsAsync(WorkspaceHandle handle, int tailLines, CancellationToken ct) => Current.GetLogsAsync(handle, tailLines, ct);
}
