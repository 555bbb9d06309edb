using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Dsvm.Core;
using Dsvm.Core.Specs;
using Dsvm.Data;
using Dsvm.Hub.Auth;
using Dsvm.Hub.Services;
using Microsoft.AspNetCore.Builder;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Logging;

namespace Dsvm.Hub.Tests;

/// <summary>
/// What outlives one hub process: the data folder, the workspace store, the engine (fake Jupyter servers) and
/// the clock. Hubs built on it share all of that, as a restarted hub would.
/// </summary>
internal sealed class HubWorld : IAsyncDisposable
{
    public const string AdminName = "admin";
    public const string AdminPassword = "admin-password-1";

    private readonly List<TestHub> _hubs = [];

    public HubWorld()
    {
        Root = Path.Combine(Path.GetTempPath(), "dsvm-hub-tests-" + Guid.NewGuid().ToString("N")[..12]);
        Paths = new DsvmPaths(Path.Combine(Root, "data"), Path.Combine(Root, "cache")).EnsureCreated();
        Store = new SqliteWorkspaceStore(Paths.Database);
    }

    public string Root { get; }

    public DsvmPaths Paths { get; }

    public SqliteWorkspaceStore Store { get; }

    public FakeJupyterBackend Backend { get; } = new();

    /// <summary>When set, hubs get this wrapping of <see cref="Backend"/> (a backend with fewer capabilities).</summary>
    public Func<FakeJupyterBackend, Dsvm.Core.Workspaces.IWorkspaceBackend>? WrapBackend { get; set; }

    /// <summary>When set, hubs get these backends (and their routing) instead of <see cref="Backend"/> alone.</summary>
    public Func<FakeJupyterBackend, Dsvm.Core.Workspaces.WorkspaceBackends>? Backends { get; set; }

    public ManualTime Time { get; } = new();

    /// <summary>Warnings and errors the hubs logged.</summary>
    public TestLogs Logs { get; } = new();

    public IEnvironmentCatalog Environments { get; set; } =
        new StaticEnvironmentCatalog([new HubEnvironment("minimal", "dsvm/minimal:test", GpuMode.None, "a test environment", 0)]);

    /// <summary>When set, hubs built from here log through this (instead of nowhere, or the console with DSVM_TEST_HUB_LOG=1).</summary>
    public Action<ILoggingBuilder>? Logging { get; set; }

    public string AccountsDbFile => Path.Combine(Paths.Data, "hub.db");

    public static HubOptions DefaultOptions() => new()
    {
        Listen = "http://127.0.0.1:0",
        AdminName = AdminName,
        AdminPassword = AdminPassword,
        // The idle culler is not under test here (and the clock is moved by hand): off.
        IdleTimeout = TimeSpan.Zero,
    };

    /// <summary>Builds a hub (not started), as a host would.</summary>
    public WebApplication Build(HubOptions options) =>
        HubHost.Build(options, new HubDependencies
        {
            Backend = WrapBackend?.Invoke(Backend) ?? Backend,
            Backends = Backends?.Invoke(Backend),
            Store = Store,
            Gpus = new NoGpus(),
            Environments = Environments,
            Paths = Paths,
            Time = Time,
        }, logging: l =>
        {
            l.AddProvider(Logs);
            if (Environment.GetEnvironmentVariable("DSVM_TEST_HUB_LOG") == "1")
            {
                l.AddConsole();
            }

            Logging?.Invoke(l);
        });

    public async Task<TestHub> StartHubAsync(HubOptions? options = null)
    {
        var app = Build(options ?? DefaultOptions());
        var password = await HubHost.InitializeAsync(app, CancellationToken.None);
        await app.StartAsync();
        var hub = new TestHub(app, new Uri(app.Urls.First()), password);
        _hubs.Add(hub);
        return hub;
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var hub in _hubs)
        {
            await hub.DisposeAsync();
        }

        await Backend.DisposeAsync();
        SqliteConnection.ClearAllPools();
        try
        {
            Directory.Delete(Root, recursive: true);
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }
}

/// <summary>One running hub on a loopback port.</summary>
internal sealed class TestHub(WebApplication app, Uri address, string? generatedPassword) : IAsyncDisposable
{
    private readonly List<IDisposable> _clients = [];
    private bool _disposed;

    public WebApplication App { get; } = app;

    /// <summary>http://127.0.0.1:PORT/</summary>
    public Uri Address { get; } = new(address.ToString().TrimEnd('/') + "/");

    public string? GeneratedPassword { get; } = generatedPassword;

    /// <summary>A client with its own cookie jar; never follows redirects.</summary>
    public HubClient NewClient()
    {
        var c = new HubClient(Address);
        _clients.Add(c);
        return c;
    }

    /// <summary>A client that sends <c>Authorization: token SECRET</c> and keeps no cookies.</summary>
    public HttpClient TokenClient(string secret)
    {
        var http = new HttpClient(new SocketsHttpHandler { UseCookies = false, UseProxy = false, AllowAutoRedirect = false })
        {
            BaseAddress = Address,
            Timeout = TimeSpan.FromSeconds(30),
        };
        http.DefaultRequestHeaders.TryAddWithoutValidation("Authorization", $"token {secret}");
        _clients.Add(http);
        return http;
    }

    /// <summary>A client with no credentials and no cookies.</summary>
    public HttpClient Anonymous()
    {
        var http = new HttpClient(new SocketsHttpHandler { UseCookies = false, UseProxy = false, AllowAutoRedirect = false })
        {
            BaseAddress = Address,
            Timeout = TimeSpan.FromSeconds(30),
        };
        _clients.Add(http);
        return http;
    }

    public async ValueTask DisposeAsync()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        foreach (var c in _clients)
        {
            c.Dispose();
        }

        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        try
        {
            await App.StopAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
        }

        await App.DisposeAsync();
    }
}

/// <summary>A browser-like client: a cookie jar, and the CSRF header echoed from the dsvm-csrf cookie after login.</summary>
internal sealed class HubClient : IDisposable
{
    public HubClient(Uri address)
    {
        Address = address;
        Http = new HttpClient(new SocketsHttpHandler { CookieContainer = Cookies, UseCookies = true, UseProxy = false, AllowAutoRedirect = false })
        {
            BaseAddress = address,
            Timeout = TimeSpan.FromSeconds(30),
        };
    }

    public Uri Address { get; }

    public CookieContainer Cookies { get; } = new();

    public HttpClient Http { get; }

    /// <summary>The password this client last logged in with (creating a token from a session asks for it).</summary>
    public string? Password { get; private set; }

    public string? Cookie(string name) => Cookies.GetCookies(Address).FirstOrDefault(c => c.Name == name)?.Value;

    /// <summary>The Cookie header this client would send to the hub.</summary>
    public string CookieHeader => Cookies.GetCookieHeader(Address);

    /// <summary>POST /api/v1/login; on success the CSRF header is set for every later request.</summary>
    public async Task<HttpResponseMessage> LoginAsync(string name, string password, bool sendCsrf = true)
    {
        var r = await Http.PostAsJsonAsync("api/v1/login", new { name, password });
        if (r.IsSuccessStatusCode)
        {
            Password = password;
        }

        if (r.IsSuccessStatusCode && sendCsrf)
        {
            Http.DefaultRequestHeaders.Remove(HubClaims.CsrfHeader);
            Http.DefaultRequestHeaders.Add(HubClaims.CsrfHeader, Cookie(HubClaims.CsrfCookie));
        }

        return r;
    }

    public void Dispose() => Http.Dispose();
}

internal static class HttpTestExtensions
{
    public static async Task<JsonElement> JsonAsync(this HttpResponseMessage r)
    {
        var text = await r.Content.ReadAsStringAsync();
        try
        {
            return JsonDocument.Parse(text).RootElement.Clone();
        }
        catch (JsonException)
        {
            throw new Xunit.Sdk.XunitException($"expected JSON, got {(int)r.StatusCode}: {text}");
        }
    }

    public static string Str(this JsonElement e, string property) => e.GetProperty(property).GetString() ?? "";

    /// <summary>Asserts a status, showing the body when it is another.</summary>
    public static async Task<HttpResponseMessage> Expect(this Task<HttpResponseMessage> response, HttpStatusCode status)
    {
        var r = await response;
        if (r.StatusCode != status)
        {
            var body = await r.Content.ReadAsStringAsync();
            Assert.Fail($"expected {(int)status} {status}, got {(int)r.StatusCode} {r.StatusCode}: {body}");
        }

        return r;
    }

    /// <summary>Asserts the answer is a ProblemDetails with this status.</summary>
    public static async Task<JsonElement> ExpectProblem(this Task<HttpResponseMessage> response, HttpStatusCode status)
    {
        var r = await response.Expect(status);
        Assert.Equal("application/problem+json", r.Content.Headers.ContentType?.MediaType);
        var json = await r.JsonAsync();
        Assert.Equal((int)status, json.GetProperty("status").GetInt32());
        return json;
    }
}
