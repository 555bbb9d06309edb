using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Net.Sockets;
using System.Text;
using Dsvm.Testing;

namespace Dsvm.Faults.Tests;

/// <summary>
/// The real <c>dsvm hub serve</c> on a machine with no Docker engine and no <c>docker</c> binary (issue 10): with only
/// a Kubernetes backend configured it starts and serves (the cluster is contacted on first use only); with a docker
/// backend configured it refuses, in one line naming the engine.
/// </summary>
public sealed class HubWithoutEngineTests : IDisposable
{
    private const string Socket = "unix:///nonexistent/dsvm-hub-no-engine.sock";
    private const string Password = "no-engine-password";
    private readonly string _home = Path.Combine(Path.GetTempPath(), "dsvm-noengine-" + Guid.NewGuid().ToString("N")[..12]);
    private readonly int _port;

    public HubWithoutEngineTests()
    {
        Directory.CreateDirectory(_home);
        using var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        _port = ((IPEndPoint)probe.LocalEndpoint).Port;
    }

    public void Dispose() => Directory.Delete(_home, recursive: true);

    private string Url => $"http://127.0.0.1:{_port}";

    /// <summary>PATH without any folder that holds a <c>docker</c> program.</summary>
    private static string PathWithoutDocker() =>
        string.Join(':', (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries)
            .Where(d => !File.Exists(Path.Combine(d, "docker"))));

    private Process StartHub(string backendsYaml)
    {
        var backends = Path.Combine(_home, "backends.yaml");
        File.WriteAllText(backends, backendsYaml);
        var dotnet = Environment.ProcessPath is { } p && Path.GetFileNameWithoutExtension(p) == "dotnet" ? p : "/usr/bin/dotnet";
        var start = new ProcessStartInfo(dotnet)
        {
            WorkingDirectory = _home,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            StandardOutputEncoding = Encoding.UTF8,
            StandardErrorEncoding = Encoding.UTF8,
        };
        foreach (var a in new[] { TestEnvironment.CliDll, "hub", "serve", "--listen", Url })
        {
            start.ArgumentList.Add(a);
        }

        start.Environment["PATH"] = PathWithoutDocker();
        start.Environment["DOCKER_HOST"] = Socket;
        start.Environment["DSVM_DOCKER"] = null;
        start.Environment["DSVM_HOME"] = _home;
        start.Environment["DSVM_BACKENDS"] = backends;
        start.Environment["DSVM_HUB_DATABASE"] = null;
        start.Environment["DSVM_HUB_ADMIN_PASSWORD"] = Password;
        start.Environment["KUBECONFIG"] = null;
        return Process.Start(start)!;
    }

    [Fact]
    public async Task A_hub_with_only_a_kubernetes_backend_serves_without_engine_or_docker_binary()
    {
        Assert.DoesNotContain(PathWithoutDocker().Split(':'), d => File.Exists(Path.Combine(d, "docker")));
        var kubeconfig = Path.Combine(_home, "kubeconfig");
        await File.WriteAllTextAsync(kubeconfig, """
            apiVersion: v1
            kind: Config
            clusters: [{ name: lab, cluster: { server: "https://127.0.0.1:1" } }]
            users: [{ name: dsvm, user: { token: not-a-real-token } }]
            contexts: [{ name: lab, context: { cluster: lab, user: dsvm } }]
            current-context: lab
            """);
        using var hub = StartHub($"backends:\n  cluster:\n    type: kubernetes\n    kubeconfig: {kubeconfig}\n");
        var output = new StringBuilder();
        hub.OutputDataReceived += (_, e) => { lock (output) { output.AppendLine(e.Data); } };
        hub.ErrorDataReceived += (_, e) => { lock (output) { output.AppendLine(e.Data); } };
        hub.BeginOutputReadLine();
        hub.BeginErrorReadLine();
        try
        {
            using var http = new HttpClient(new HttpClientHandler { CookieContainer = new CookieContainer() }) { BaseAddress = new Uri(Url), Timeout = TimeSpan.FromSeconds(10) };
            HttpResponseMessage? login = null;
            for (var i = 0; i < 600 && login is null; i++)
            {
                Assert.False(hub.HasExited, $"the hub exited at start:\n{output}");
                try
                {
                    login = await http.GetAsync("hub/login");
                }
                catch (HttpRequestException)
                {
                    await Task.Delay(100);
                }
            }

            Assert.NotNull(login);
            Assert.Equal(HttpStatusCode.OK, login.StatusCode);
            (await http.PostAsJsonAsync("api/v1/login", new { name = "admin", password = Password })).EnsureSuccessStatusCode();
            var environments = await http.GetAsync("api/v1/environments");
            Assert.Equal(HttpStatusCode.OK, environments.StatusCode);
            Assert.Equal("[]", (await environments.Content.ReadAsStringAsync()).Trim());
            Assert.False(hub.HasExited, output.ToString());
        }
        finally
        {
            hub.Kill(entireProcessTree: true);
            await hub.WaitForExitAsync();
        }
    }

    [Fact]
    public async Task A_hub_with_a_docker_backend_and_no_engine_refuses_in_one_line_naming_it()
    {
        using var hub = StartHub("backends:\n  docker: {}\n");
        var stdout = hub.StandardOutput.ReadToEndAsync();
        var stderr = hub.StandardError.ReadToEndAsync();
        await hub.WaitForExitAsync();
        var all = await stdout + await stderr;
        Assert.Equal(5, hub.ExitCode);
        Assert.DoesNotContain("   at ", all, StringComparison.Ordinal);
        var line = Assert.Single(all.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.StartsWith("error: ", line, StringComparison.Ordinal);
        Assert.Contains("docker", line, StringComparison.OrdinalIgnoreCase);
    }
}
