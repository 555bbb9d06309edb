using System.Net;
using System.Net.Http.Json;
using System.Text.Json;

namespace Dsvm.Hub.Tests;

/// <summary>Each test gets its own data folder, fake engine and running hub; all are disposed after it.</summary>
[System.Diagnostics.CodeAnalysis.SuppressMessage("Design", "CA1001", Justification = "xunit disposes it through IAsyncLifetime.DisposeAsync")]
public abstract class HubTestBase : IAsyncLifetime
{
    private HubWorld? _world;
    private TestHub? _hub;
    private HubClient? _admin;

    internal HubWorld World => _world ?? throw new InvalidOperationException("not initialised");

    internal TestHub Hub => _hub ?? throw new InvalidOperationException("not initialised");

    /// <summary>The hub's settings for this test class.</summary>
    internal virtual HubOptions Options(HubOptions defaults) => defaults;

    public virtual async Task InitializeAsync()
    {
        _world = new HubWorld();
        _hub = await _world.StartHubAsync(Options(HubWorld.DefaultOptions()));
    }

    public virtual async Task DisposeAsync()
    {
        if (_world is not null)
        {
            await _world.DisposeAsync();
        }
    }

    internal static string PasswordOf(string user) => $"password-of-{user}";

    /// <summary>The admin's browser session (cookie + CSRF header).</summary>
    internal async Task<HubClient> AdminAsync()
    {
        if (_admin is null)
        {
            var c = Hub.NewClient();
            await c.LoginAsync(HubWorld.AdminName, HubWorld.AdminPassword).Expect(HttpStatusCode.OK);
            _admin = c;
        }

        return _admin;
    }

    internal async Task CreateUserAsync(string name, bool admin = false)
    {
        var a = await AdminAsync();
        await a.Http.PostAsJsonAsync("api/v1/users", new { name, password = PasswordOf(name), admin }).Expect(HttpStatusCode.Created);
    }

    /// <summary>Creates the user (when asked) and returns their logged-in browser session.</summary>
    internal async Task<HubClient> UserAsync(string name, bool create = true, bool admin = false)
    {
        if (create)
        {
            await CreateUserAsync(name, admin);
        }

        var c = Hub.NewClient();
        await c.LoginAsync(name, PasswordOf(name)).Expect(HttpStatusCode.OK);
        return c;
    }

    /// <summary>POST /api/v1/tokens from a session; returns the created-token JSON ({token, info}).</summary>
    internal static async Task<JsonElement> CreateTokenAsync(HubClient session, string[]? scopes = null, int? expiresInDays = null, string name = "test")
    {
        var r = await session.Http.PostAsJsonAsync("api/v1/tokens", new { name, scopes, expiresInDays, password = session.Password }).Expect(HttpStatusCode.Created);
        return await r.JsonAsync();
    }

    /// <summary>A user with a workspaces-scoped API token client.</summary>
    internal async Task<HttpClient> UserTokenClientAsync(string name, bool admin = false)
    {
        var session = await UserAsync(name, admin: admin);
        var created = await CreateTokenAsync(session);
        return Hub.TokenClient(created.Str("token"));
    }

    /// <summary>Starts a workspace with <c>?wait=true</c> and asserts it is running.</summary>
    internal static async Task<JsonElement> StartRunningAsync(HttpClient c, string name, string size = "small")
    {
        var r = await c.PostAsJsonAsync("api/v1/workspaces?wait=true", new { name, environment = "minimal", size }).Expect(HttpStatusCode.OK);
        var w = await r.JsonAsync();
        Assert.Equal("running", w.Str("state"));
        return w;
    }

    /// <summary>Polls a workspace until it reaches a state (20 s at most).</summary>
    internal static async Task<JsonElement> WaitForStateAsync(HttpClient c, string url, string state)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        JsonElement last = default;
        while (!timeout.IsCancellationRequested)
        {
            var r = await c.GetAsync(url).Expect(HttpStatusCode.OK);
            last = await r.JsonAsync();
            if (last.Str("state") == state)
            {
                return last;
            }

            await Task.Delay(50);
        }

        Assert.Fail($"{url} did not reach {state}; last: {last}");
        return last;
    }
}
