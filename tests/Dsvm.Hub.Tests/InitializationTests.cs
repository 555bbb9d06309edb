using System.Net;

namespace Dsvm.Hub.Tests;

[System.Diagnostics.CodeAnalysis.SuppressMessage("Design", "CA1001", Justification = "xunit disposes it through IAsyncLifetime.DisposeAsync")]
public sealed class InitializationTests : IAsyncLifetime
{
    private readonly HubWorld _world = new();

    public Task InitializeAsync() => Task.CompletedTask;

    public Task DisposeAsync() => _world.DisposeAsync().AsTask();

    [Fact]
    public async Task First_initialize_creates_the_admin_with_a_generated_password_returned_once()
    {
        var options = HubWorld.DefaultOptions() with { AdminPassword = null };
        var app = _world.Build(options);
        string? generated;
        try
        {
            generated = await HubHost.InitializeAsync(app, CancellationToken.None);
            Assert.False(string.IsNullOrWhiteSpace(generated));
            Assert.True(generated!.Length >= 16, generated);
            Assert.Null(await HubHost.InitializeAsync(app, CancellationToken.None));
        }
        finally
        {
            await app.DisposeAsync();
        }

        // A restarted hub on the same data finds the admin and prints nothing again.
        var hub = await _world.StartHubAsync(options);
        Assert.Null(hub.GeneratedPassword);
        var admin = hub.NewClient();
        await admin.LoginAsync(HubWorld.AdminName, generated).Expect(HttpStatusCode.OK);
        var me = await (await admin.Http.GetAsync("api/v1/me").Expect(HttpStatusCode.OK)).JsonAsync();
        Assert.Equal(HubWorld.AdminName, me.Str("name"));
        Assert.True(me.GetProperty("admin").GetBoolean());
    }

    [Fact]
    public async Task An_engine_that_does_not_answer_at_start_does_not_keep_the_hub_from_serving()
    {
        // A real Docker client on a socket that does not exist, as the only backend: the start-up reconciliation fails,
        // is logged, and is left to the periodic one (backends connect on first use).
        var missing = new Dsvm.Docker.DockerWorkspaceBackend(
            new Dsvm.Docker.DockerBackendOptions { Endpoint = new Uri("unix:///nonexistent/dsvm-init-test.sock") }, new NoGpus());
        _world.Backends = _ => new Dsvm.Core.Workspaces.WorkspaceBackends(
            new Dictionary<string, Func<Dsvm.Core.Workspaces.IWorkspaceBackend>> { ["docker"] = () => missing }, "docker");
        var hub = await _world.StartHubAsync(HubWorld.DefaultOptions());
        var admin = hub.NewClient();
        await admin.LoginAsync(HubWorld.AdminName, HubWorld.AdminPassword).Expect(HttpStatusCode.OK);
        await admin.Http.GetAsync("api/v1/environments").Expect(HttpStatusCode.OK);
    }

    [Fact]
    public async Task Configured_admin_password_is_used_and_nothing_is_returned()
    {
        var hub = await _world.StartHubAsync(HubWorld.DefaultOptions() with { AdminName = "root", AdminPassword = "configured-secret-9" });
        Assert.Null(hub.GeneratedPassword);
        await hub.NewClient().LoginAsync("root", "configured-secret-9").Expect(HttpStatusCode.OK);
        await hub.NewClient().LoginAsync("root", "something-else").Expect(HttpStatusCode.Unauthorized);
    }
}
