using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using Dsvm.Testing;

namespace Dsvm.Faults.Tests;

/// <summary>
/// The real hub (<c>dsvm hub serve</c>) on a test's state folder and a free loopback port, and the real CLI as its
/// client (logged in as the admin, its login under the test's folder). The owning test calls <see cref="Stop"/>.
/// </summary>
public sealed class HubProcess(FaultWorkspace ws)
{
    public const string Password = "hub-fault-password";

    private readonly int _port = FreePort();
    private Process? _process;

    public string Url => $"http://127.0.0.1:{_port}";

    public Process Process => _process ?? throw new InvalidOperationException("the hub is not started");

    private static int FreePort()
    {
        using var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        return ((IPEndPoint)probe.LocalEndpoint).Port;
    }

    /// <summary>Starts the hub (with <c>DSVM_FAULT</c> = <paramref name="fault"/>) and waits until it answers.</summary>
    public async Task StartAsync(string? fault, IReadOnlyDictionary<string, string>? environment = null)
    {
        var start = new ProcessStartInfo("dotnet")
        {
            WorkingDirectory = TestEnvironment.RepoRoot,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        foreach (var a in new[] { TestEnvironment.CliDll, "hub", "serve", "--listen", Url })
        {
            start.ArgumentList.Add(a);
        }

        start.Environment["DSVM_HOME"] = ws.Home;
        start.Environment["DSVM_HUB_ADMIN_PASSWORD"] = Password;
        start.Environment["DSVM_START_TIMEOUT"] = "60";
        start.Environment["DSVM_FAULT"] = fault;
        // The hub sets its records right in its reconcile pass (every minute by default); the tests wait for it after
        // each engine fault, so a pass every 3 s saves them most of a minute each. A test may set another.
        start.Environment["DSVM__Hub__ReconcileInterval"] = "00:00:03";
        foreach (var (key, value) in environment ?? new Dictionary<string, string>())
        {
            start.Environment[key] = value;
        }

        _process = Process.Start(start)!;
        _process.OutputDataReceived += (_, _) => { };
        _process.ErrorDataReceived += (_, _) => { };
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
        for (var i = 0; i < 600; i++)
        {
            Assert.False(_process.HasExited, $"the hub exited at start with {(_process.HasExited ? _process.ExitCode : 0)}");
            try
            {
                if ((await http.GetAsync($"{Url}/hub/login")).IsSuccessStatusCode)
                {
                    return;
                }
            }
            catch (HttpRequestException)
            {
            }

            await Task.Delay(100);
        }

        Assert.Fail("the hub did not answer within 60 s");
    }

    public void Stop()
    {
        if (_process is { HasExited: false })
        {
            _process.Kill(entireProcessTree: true);
            _process.WaitForExit();
        }

        _process?.Dispose();
        _process = null;
    }

    /// <summary>The CLI as this hub's client.</summary>
    public Task<Result> DsvmAsync(string? stdin, params string[] args) => DsvmAsync(stdin, args, CancellationToken.None);

    /// <summary>The CLI as this hub's client, killed when <paramref name="ct"/> is cancelled.</summary>
    public Task<Result> DsvmAsync(string? stdin, string[] args, CancellationToken ct) =>
        FaultWorkspace.RunCliAsync(e => e.Set("XDG_CONFIG_HOME", Path.Combine(ws.Home, "config")).Set("DSVM_HOME", Path.Combine(ws.Home, "client")), stdin, args, ct);

    public async Task<Result> OkAsync(params string[] args)
    {
        var r = await DsvmAsync(null, args);
        Assert.True(r.ExitCode == 0, $"dsvm {string.Join(' ', args)}: {r}");
        return r;
    }

    public async Task LoginAsync()
    {
        var login = await DsvmAsync(Password, "login", Url, "--user", "admin");
        Assert.True(login.ExitCode == 0, $"login: {login}");
    }

    /// <summary>The workspace's state as the hub reports it (null: no record), checked against the engine.</summary>
    public async Task<string?> StateAsync()
    {
        var (state, listing) = await RecordedStateAsync();
        await ws.AssertTruthfulAsync(state, listing);
        return state;
    }

    /// <summary>The workspace's state as the hub reports it (null: no record), and the listing; the engine is not looked at.</summary>
    public async Task<(string? State, string Listing)> RecordedStateAsync()
    {
        var r = await OkAsync("ls", "-o", "json");
        var state = JsonDocument.Parse(r.Stdout).RootElement.GetProperty("workspaces").EnumerateArray()
            .Where(w => w.GetProperty("name").GetString() == ws.Name)
            .Select(w => w.GetProperty("state").GetString()?.ToLowerInvariant()).FirstOrDefault();
        return (state, r.ToString());
    }
}
