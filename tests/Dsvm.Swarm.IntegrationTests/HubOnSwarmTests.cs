using System.Diagnostics;
using System.Net;
using System.Security.Cryptography;
using System.Text;
using CliWrap;
using CliWrap.Buffered;
using Dsvm.Core.Workspaces;
using Dsvm.Images.Registry;
using Dsvm.Testing;
using Xunit.Abstractions;
using Xunit.Sdk;

namespace Dsvm.Swarm.IntegrationTests;

/// <summary>
/// Issue 10, part 4: the hub as a swarm service on the lab, its state in PostgreSQL. The hub image is built from
/// deploy/hub for real, a PostgreSQL image (a stand-in for postgres:16, built from Debian's package: no Docker Hub
/// here) and the <c>minimal</c> environment (as <c>dsvm env push</c> pushes it) go to the lab's registry, and
/// deploy/swarm/hub-stack.yml is deployed with <c>docker stack deploy</c> on the manager with only what a user sets:
/// its variables (images, registry, passwords, the manager's socket path on this lab) and the sizes. Then, through
/// the hub's port on the manager's address: log in, start two users' workspaces as swarm services pulling the
/// environment by digest, run code in a kernel over a WebSocket through the hub's proxy, find the records in
/// PostgreSQL and none in the hub's data folder, replace the hub's task on an empty data volume and find users and
/// workspaces there and routable, stop/start keeping the home, delete both.
/// </summary>
[Collection("swarm")]
[Trait("Requires", "Docker")]
public sealed class HubOnSwarmTests(SwarmFixture fx, ITestOutputHelper output)
{
    private const string Stack = "dsvm";
    private const string HubService = Stack + "_hub";
    private const string PostgresService = Stack + "_postgres";
    private const string AdminPassword = "swarm-admin-pass-81c2";
    private const string DbPassword = "swarm-db-pass-5d07";
    private const string HubLabel = "opendsvm.hub";

    /// <summary>Small enough for the lab's nodes next to the 30-workspace fleet (0.15 CPU each) and the hub.</summary>
    private const string Sizes = """
        e2e-tiny: {vcpus: 0.2, memory: 0.5, description: "a fifth of a vCPU, 512 MiB (end-to-end test)"}
        e2e-offline: {vcpus: 0.2, memory: 0.5, network: isolated, description: "e2e-tiny without a way out (end-to-end test)"}
        """;

    private static readonly Uri HubUrl = new($"http://{SwarmLab.NodeAddresses[0]}:8000/");

    [SwarmFact]
    public async Task The_hub_deployed_from_the_stack_file_serves_workspaces_and_a_new_hub_task_finds_them_in_postgres()
    {
        Assert.Null(SwarmFixture.SkipReason);
        Assert.NotEmpty(fx.Image); // the lab is up, the environment built and on every node
        var clock = Stopwatch.StartNew();
        using var cts = new CancellationTokenSource(TimeSpan.FromMinutes(20));
        var ct = cts.Token;
        var run = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(4));
        var hubTag = $"{SwarmLab.PushRegistry}/opendsvm/hub:e2e-{run}";
        var postgresTag = $"{SwarmLab.PushRegistry}/opendsvm-test/postgres:e2e-{run}";
        var stackDir = Path.Combine(Path.GetTempPath(), $"dsvm-hub-stack-{run}");
        var deployed = false;
        try
        {
            // 1. The images: the environment's push runs while the hub is published and both images are built.
            await BuiltEnvironment.GetAsync("minimal");
            var pusher = new RegistryPusher(BuiltEnvironment.Services.Docker, BuiltEnvironment.Services.Records);
            var push = pusher.PushAsync("minimal", RegistryAddress.Parse(SwarmLab.PushRegistry), null, m => Log($"push: {m}"), ct);
            await HubImage.PublishAsync(Log, ct);
            var built = Stopwatch.StartNew();
            var baseImage = await HubImage.BuildAsync(hubTag, ct);
            await HubImage.DockerAsync(["build", "--build-arg", $"BASE={baseImage}", "-t", postgresTag, Path.Combine(TestEnvironment.RepoRoot, "tests", "swarm", "postgres")], ct,
                ("DOCKER_BUILDKIT", "0"));
            await HubImage.DockerAsync(["push", hubTag], ct);
            await HubImage.DockerAsync(["push", postgresTag], ct);
            Log($"hub and postgres images on {baseImage} built and pushed in {built.Elapsed.TotalSeconds:0}s");
            var pushed = await push;
            Log($"environment pushed: {pushed.PinnedReference} ({clock.Elapsed.TotalSeconds:0}s so far)");

            // 2. What the operator does (docs/swarm.md): label the manager, let its address reach the published ports,
            // deploy the stack file with its variables.
            await NodeAsync(1, ["node", "update", "--label-add", $"{HubLabel}=true", "dsvmsw-n1"], ct);
            await NodeRulesAsync([SwarmLab.Bridge, SwarmLab.NodeAddresses[0]], ct);
            CopyStack(stackDir);
            deployed = true;
            var deploy = await Cli.Wrap("docker")
                .WithArguments(["-H", SwarmLab.ManagerEndpoint.ToString(), "stack", "deploy", "--detach=true", "-c", Path.Combine(stackDir, "hub-stack.yml"), Stack])
                .WithEnvironmentVariables(e => e
                    .Set("DSVM_HUB_IMAGE", hubTag.Replace(SwarmLab.PushRegistry, SwarmLab.Registry, StringComparison.Ordinal))
                    .Set("DSVM_POSTGRES_IMAGE", postgresTag.Replace(SwarmLab.PushRegistry, SwarmLab.Registry, StringComparison.Ordinal))
                    .Set("DSVM_REGISTRY_URL", $"http://{SwarmLab.Registry}")
                    .Set("DSVM_DB_PASSWORD", DbPassword)
                    .Set("DSVM_HUB_ADMIN_PASSWORD", AdminPassword)
                    .Set("DSVM_DOCKER_SOCKET", SwarmLab.ManagerEndpoint.AbsolutePath))
                .WithValidation(CommandResultValidation.None).ExecuteBufferedAsync(ct);
            Assert.True(deploy.ExitCode == 0, $"docker stack deploy failed (exit {deploy.ExitCode}):\n{deploy.StandardOutput}\n{deploy.StandardError}");
            Log(deploy.StandardOutput.Trim());
            var hubContainer = await WaitForHubAsync(previous: null, ct);
            Log($"hub task {hubContainer[..12]} answers at {HubUrl} ({clock.Elapsed.TotalSeconds:0}s so far)");

            // 3. Through the hub's port: the admin from the variable, a second user, the environment from the registry.
            using var admin = await HubSession.LogInAsync(HubUrl, "admin", AdminPassword, ct);
            (await admin.SendAsync(HttpMethod.Post, "api/v1/users", new { name = "alice", password = "alice-pass-2b9e", admin = false }, ct)).Expect(HttpStatusCode.Created);
            using var alice = await HubSession.LogInAsync(HubUrl, "alice", "alice-pass-2b9e", ct);
            var environments = (await alice.SendAsync(HttpMethod.Get, "api/v1/environments", null, ct)).Expect(HttpStatusCode.OK);
            var minimal = Assert.Single(environments.Json.EnumerateArray(), e => e.GetProperty("name").GetString() == "minimal");
            Assert.Contains($"({pushed.ChecksPassed}/{pushed.ChecksTotal} checks passed)", minimal.GetProperty("description").GetString(), StringComparison.Ordinal);

            // 4. Two workspaces of two users: swarm services with reservations = limits from the size, the image by
            // digest from the registry as the nodes see it.
            // admin's is isolated: on an internal overlay, reached through its forwarder service.
            var starts = new[] { StartAsync(alice, "w1", "e2e-tiny", ct), StartAsync(admin, "w2", "e2e-offline", ct) };
            await Task.WhenAll(starts);
            foreach (var (owner, name) in new[] { ("alice", "w1"), ("admin", "w2") })
            {
                var service = await WorkspaceServiceAsync(owner, name, ct);
                Assert.Equal($"{SwarmLab.Registry}/dsvm/minimal@{pushed.Digest}", service.Image);
                Assert.Equal("200000000 536870912", service.Limits);
                Assert.Equal("200000000 536870912", service.Reservations);
            }

            Log($"w1 and w2 running as swarm services ({clock.Elapsed.TotalSeconds:0}s so far)");

            // 5. Code in a kernel over a WebSocket through the hub's proxy, as JupyterLab runs it.
            Assert.Equal("42 65530", (await alice.RunInKernelAsync("alice", "w1",
                "import os\nopen(os.path.expanduser('~/e2e-marker'), 'w').write('kept by w1')\nprint(6 * 7, os.getuid())", ct)).Trim());
            Assert.Equal("e2e-offline", (await admin.RunInKernelAsync("admin", "w2", "import os; print(os.environ['DSVM_SIZE'])", ct)).Trim());
            // The isolated one reaches nothing (here the registry on the hub's machine), the other one does.
            const string Reach = "import socket\ntry:\n    socket.create_connection(('10.211.0.1', 5000), 3).close(); print('reached')\nexcept OSError as e:\n    print('no way out')";
            Assert.Equal("no way out", (await admin.RunInKernelAsync("admin", "w2", Reach, ct)).Trim());
            Assert.Single((await NodeAsync(1, ["service", "ls", "-q", "--filter", "label=io.opendsvm.role=forwarder"], ct)).Split('\n', StringSplitOptions.RemoveEmptyEntries));
            Assert.Equal(HttpStatusCode.Forbidden, (await alice.SendAsync(HttpMethod.Get, "user/admin/w2/api/status", null, ct)).Status);

            // 6. The state is in PostgreSQL: the workspaces and users are rows there, and the hub's data folder has no SQLite file.
            Assert.Equal("admin/w2 running\nalice/w1 running",
                await PsqlAsync("""SELECT "Owner" || '/' || "Name" || ' ' || lower("State") FROM workspaces ORDER BY 1""", ct));
            Assert.Equal("admin\nalice", await PsqlAsync("""SELECT "Name" FROM users ORDER BY 1""", ct));
            var dataFiles = (await NodeAsync(1, ["exec", hubContainer, "ls", "-A", "/data"], ct)).Split('\n', StringSplitOptions.RemoveEmptyEntries);
            Assert.DoesNotContain(dataFiles, f => f.EndsWith(".db", StringComparison.Ordinal));

            // 7. The hub's task goes, and so does its data volume; the new task (a fresh container on an empty /data)
            // knows the users and finds both workspaces running, their services untouched, and routes to them.
            var before = await WorkspaceServicesAsync(ct);
            var restart = Stopwatch.StartNew();
            await NodeAsync(1, ["service", "scale", "--detach=true", $"{HubService}=0"], ct);
            await Wait.UntilAsync(async () => (await NodeAsync(1, ["ps", "-q", "--filter", $"label=com.docker.swarm.service.name={HubService}"], ct)).Trim().Length == 0,
                TimeSpan.FromMinutes(2), () => "the hub's container still runs after scaling to 0", ct);
            // The exited containers of its tasks (kept in the task history) hold the volume: removed with it.
            var exited = (await NodeAsync(1, ["ps", "-aq", "--filter", $"label=com.docker.swarm.service.name={HubService}"], ct)).Split('\n', StringSplitOptions.RemoveEmptyEntries);
            await NodeAsync(1, ["rm", .. exited], ct);
            await NodeAsync(1, ["volume", "rm", $"{Stack}_hub-data"], ct);
            await NodeAsync(1, ["service", "scale", "--detach=true", $"{HubService}=1"], ct);
            var newContainer = await WaitForHubAsync(previous: hubContainer, ct);
            Log($"hub task and data volume removed; {newContainer[..12]} answers {restart.Elapsed.TotalSeconds:0}s later");
            using var admin2 = await HubSession.LogInAsync(HubUrl, "admin", AdminPassword, ct);
            using var alice2 = await HubSession.LogInAsync(HubUrl, "alice", "alice-pass-2b9e", ct);
            var list = (await admin2.SendAsync(HttpMethod.Get, "api/v1/workspaces?all=true", null, ct)).Expect(HttpStatusCode.OK);
            Assert.Equal(["admin/w2 running", "alice/w1 running"],
                list.Json.EnumerateArray().Select(w => $"{w.GetProperty("owner").GetString()}/{w.GetProperty("name").GetString()} {w.GetProperty("state").GetString()}").Order(StringComparer.Ordinal));
            Assert.Equal(before, await WorkspaceServicesAsync(ct));
            Assert.Equal("kept by w1", (await alice2.RunInKernelAsync("alice", "w1", "import os; print(open(os.path.expanduser('~/e2e-marker')).read())", ct)).Trim());
            Assert.Equal("2", (await admin2.RunInKernelAsync("admin", "w2", "print(1 + 1)", ct)).Trim());
            Log($"both workspaces routable {restart.Elapsed.TotalSeconds:0}s after the hub's task was removed");

            // 8. Stop removes the service and keeps the home; the start is a new service on the same home.
            var stopped = (await alice2.SendAsync(HttpMethod.Post, "api/v1/workspaces/alice/w1/stop", null, ct)).Expect(HttpStatusCode.OK);
            Assert.Equal("stopped", stopped.Json.GetProperty("state").GetString());
            Assert.DoesNotContain(await WorkspaceServicesAsync(ct), s => s.StartsWith("alice/w1 ", StringComparison.Ordinal));
            Assert.Equal("alice/w1 stopped", await PsqlAsync("""SELECT "Owner" || '/' || "Name" || ' ' || lower("State") FROM workspaces WHERE "Owner" = 'alice'""", ct));
            (await alice2.SendAsync(HttpMethod.Post, "api/v1/workspaces/alice/w1/start?wait=true", null, ct)).Expect(HttpStatusCode.OK);
            Assert.Equal("kept by w1", (await alice2.RunInKernelAsync("alice", "w1", "import os; print(open(os.path.expanduser('~/e2e-marker')).read())", ct)).Trim());

            // 9. Delete: the services go, and the records.
            (await admin2.SendAsync(HttpMethod.Delete, "api/v1/workspaces/admin/w2", null, ct)).Expect(HttpStatusCode.NoContent);
            (await alice2.SendAsync(HttpMethod.Delete, "api/v1/workspaces/alice/w1", null, ct)).Expect(HttpStatusCode.NoContent);
            await Wait.UntilAsync(async () => (await WorkspaceServicesAsync(ct)).Count == 0, TimeSpan.FromSeconds(30),
                () => "workspace services of the hub's users are still there after delete", ct);
            Assert.Equal("", (await NodeAsync(1, ["service", "ls", "-q", "--filter", "label=io.opendsvm.role=forwarder"], ct)).Trim());
            Assert.Empty((await admin2.SendAsync(HttpMethod.Get, "api/v1/workspaces?all=true", null, ct)).Expect(HttpStatusCode.OK).Json.EnumerateArray());
            Assert.Equal("", await PsqlAsync("SELECT \"Name\" FROM workspaces", ct));
            Log($"end-to-end test passed in {clock.Elapsed.TotalSeconds:0}s");
        }
        catch (Exception ex)
        {
            throw new XunitException($"{ex.GetType().Name}: {ex.Message}\n{await DiagnosticsAsync()}", ex);
        }
        finally
        {
            await CleanUpAsync(deployed, stackDir, [hubTag, postgresTag]);
        }
    }

    private void Log(string message) => output.WriteLine($"[{DateTime.UtcNow:HH:mm:ss}] {message}");

    // ---- the stack ----

    /// <summary>deploy/swarm as shipped, to a folder of its own, with the test's size appended to sizes.yaml (only comments as shipped).</summary>
    private static void CopyStack(string dir)
    {
        var source = Path.Combine(TestEnvironment.RepoRoot, "deploy", "swarm");
        Directory.CreateDirectory(dir);
        foreach (var file in Directory.GetFiles(source))
        {
            File.Copy(file, Path.Combine(dir, Path.GetFileName(file)), overwrite: true);
        }

        var sizes = Path.Combine(dir, "sizes.yaml");
        Assert.True(File.ReadAllText(sizes).EndsWith('\n'), "deploy/swarm/sizes.yaml does not end with a newline: update the end-to-end test's patch");
        File.AppendAllText(sizes, Sizes + "\n");
    }

    /// <summary>The node rules of the lab (scripts/swarm-node-rules.sh) with these hub addresses, on every node.</summary>
    private static async Task NodeRulesAsync(string[] hubs, CancellationToken ct)
    {
        var script = Path.Combine(TestEnvironment.RepoRoot, "scripts", "swarm-node-rules.sh");
        for (var n = 1; n <= 3; n++)
        {
            var r = await Cli.Wrap("nsenter").WithArguments([$"--net=/run/netns/dsvmsw-n{n}", script, "--protect", "10.211.0.0/24", .. hubs.SelectMany(h => new[] { "--hub", h })])
                .WithValidation(CommandResultValidation.None).ExecuteBufferedAsync(ct);
            Assert.True(r.ExitCode == 0, $"swarm-node-rules.sh on node {n} failed: {r.StandardError}");
        }
    }

    /// <summary>The docker CLI on node <paramref name="node"/>'s engine; fails on a non-zero exit.</summary>
    private static async Task<string> NodeAsync(int node, string[] args, CancellationToken ct)
    {
        var r = await SwarmLab.DockerAsync(node, args, ct);
        Assert.True(r.ExitCode == 0, $"docker {string.Join(' ', args)} on node {node} failed (exit {r.ExitCode}):\n{HubImage.Tail(r.StandardOutput)}\n{HubImage.Tail(r.StandardError)}");
        return r.StandardOutput;
    }

    /// <summary>
    /// Until the hub's service has a running task whose container is not <paramref name="previous"/> and the hub
    /// answers /healthz at the manager's address; returns the container's id.
    /// </summary>
    private static async Task<string> WaitForHubAsync(string? previous, CancellationToken ct)
    {
        using var http = new HttpClient(new SocketsHttpHandler { UseProxy = false }) { Timeout = TimeSpan.FromSeconds(5) };
        string? container = null;
        var last = "";
        await Wait.UntilAsync(async () =>
        {
            container = (await NodeAsync(1, ["ps", "-q", "--no-trunc", "--filter", $"label=com.docker.swarm.service.name={HubService}"], ct))
                .Split('\n', StringSplitOptions.RemoveEmptyEntries).FirstOrDefault(c => c != previous);
            if (container is null)
            {
                last = "no running hub container";
                return false;
            }

            (var ok, last) = await Healthz.AskAsync(http, HubUrl, ct);
            return ok;
        }, TimeSpan.FromMinutes(4), () => $"the hub did not answer /healthz at {HubUrl} (last: {last})", ct);
        return container!;
    }

    /// <summary>A query in the stack's PostgreSQL (psql in its container over the local socket, as the stack's user); rows on lines, unaligned.</summary>
    private static async Task<string> PsqlAsync(string sql, CancellationToken ct)
    {
        var container = (await NodeAsync(1, ["ps", "-q", "--filter", $"label=com.docker.swarm.service.name={PostgresService}"], ct)).Trim();
        Assert.False(container.Length == 0, "no running PostgreSQL container");
        return (await NodeAsync(1, ["exec", container, "psql", "-U", "dsvm", "-d", "dsvm", "-Atc", sql], ct)).Trim();
    }

    // ---- workspaces ----

    private static async Task StartAsync(HubSession session, string name, string size, CancellationToken ct)
    {
        var r = (await session.SendAsync(HttpMethod.Post, "api/v1/workspaces?wait=true", new { name, environment = "minimal", size }, ct)).Expect(HttpStatusCode.OK);
        Assert.Equal("running", r.Json.GetProperty("state").GetString());
        Assert.Equal("swarm", r.Json.GetProperty("backend").GetString());
    }

    private sealed record ServiceView(string Image, string Limits, string Reservations);

    private static async Task<ServiceView> WorkspaceServiceAsync(string owner, string name, CancellationToken ct)
    {
        var id = Assert.Single((await NodeAsync(1, ["service", "ls", "-q", "--filter", $"label={WorkspaceLabels.Owner}={owner}",
            "--filter", $"label={WorkspaceLabels.Name}={name}", "--filter", $"label={WorkspaceLabels.Managed}=true"], ct)).Split('\n', StringSplitOptions.RemoveEmptyEntries));
        var text = (await NodeAsync(1, ["service", "inspect", id, "--format",
            "{{.Spec.TaskTemplate.ContainerSpec.Image}}|{{.Spec.TaskTemplate.Resources.Limits.NanoCPUs}} {{.Spec.TaskTemplate.Resources.Limits.MemoryBytes}}|{{.Spec.TaskTemplate.Resources.Reservations.NanoCPUs}} {{.Spec.TaskTemplate.Resources.Reservations.MemoryBytes}}"], ct)).Trim().Split('|');
        return new ServiceView(text[0], text[1], text[2]);
    }

    /// <summary>"OWNER/NAME SERVICE-ID CREATED" of the workspace services of the hub's users (not the fixture's).</summary>
    private static async Task<List<string>> WorkspaceServicesAsync(CancellationToken ct)
    {
        var ids = (await NodeAsync(1, ["service", "ls", "-q", "--filter", $"label={WorkspaceLabels.Managed}=true"], ct)).Split('\n', StringSplitOptions.RemoveEmptyEntries);
        if (ids.Length == 0)
        {
            return [];
        }

        var lines = (await NodeAsync(1, ["service", "inspect", "--format",
            $"{{{{index .Spec.Labels \"{WorkspaceLabels.Owner}\"}}}}/{{{{index .Spec.Labels \"{WorkspaceLabels.Name}\"}}}} {{{{.ID}}}} {{{{.CreatedAt}}}}", .. ids], ct))
            .Split('\n', StringSplitOptions.RemoveEmptyEntries);
        return [.. lines.Where(l => l.StartsWith("alice/", StringComparison.Ordinal) || l.StartsWith("admin/", StringComparison.Ordinal)).Order(StringComparer.Ordinal)];
    }

    // ---- clean-up and diagnostics ----

    /// <summary>The stack, its volumes, the workspaces' services and homes, the label, the lab's own node rules, the local tags.</summary>
    private async Task CleanUpAsync(bool deployed, string stackDir, string[] tags)
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromMinutes(3));
        var ct = cts.Token;
        try
        {
            if (deployed)
            {
                await SwarmLab.DockerAsync(1, ["stack", "rm", Stack], ct);
                foreach (var line in await WorkspaceServicesAsync(ct))
                {
                    await SwarmLab.DockerAsync(1, ["service", "rm", line.Split(' ')[1]], ct);
                }

                foreach (var forwarder in (await SwarmLab.DockerAsync(1, ["service", "ls", "-q", "--filter", "label=io.opendsvm.role=forwarder"], ct)).StandardOutput
                             .Split('\n', StringSplitOptions.RemoveEmptyEntries))
                {
                    await SwarmLab.DockerAsync(1, ["service", "rm", forwarder], ct);
                }

                await Wait.UntilAsync(async () => (await SwarmLab.DockerAsync(1, ["ps", "-aq", "--filter", $"label=com.docker.stack.namespace={Stack}"], ct)).StandardOutput.Trim().Length == 0,
                    TimeSpan.FromMinutes(1), () => "the stack's containers are still there", ct);
                await SwarmLab.DockerAsync(1, ["volume", "rm", $"{Stack}_hub-data", $"{Stack}_hub-postgres"], ct);
                for (var n = 1; n <= 3; n++)
                {
                    var homes = (await SwarmLab.DockerAsync(n, ["volume", "ls", "-q", "--filter", "name=dsvm-home-alice-", "--filter", "name=dsvm-home-admin-"], ct)).StandardOutput
                        .Split('\n', StringSplitOptions.RemoveEmptyEntries);
                    foreach (var home in homes)
                    {
                        await Wait.UntilAsync(async () => (await SwarmLab.DockerAsync(n, ["volume", "rm", home], ct)).ExitCode == 0, TimeSpan.FromSeconds(30),
                            () => $"home {home} on node {n} still in use", ct);
                    }
                }
            }

            await SwarmLab.DockerAsync(1, ["node", "update", "--label-rm", HubLabel, "dsvmsw-n1"], ct);
            await NodeRulesAsync([SwarmLab.Bridge], ct);
        }
        catch (Exception ex) when (ex is XunitException or OperationCanceledException)
        {
            Log($"clean-up: {ex.Message}");
        }

        if (Directory.Exists(stackDir))
        {
            Directory.Delete(stackDir, recursive: true);
        }

        await Cli.Wrap("docker").WithArguments(["rmi", .. tags]).WithValidation(CommandResultValidation.None).ExecuteBufferedAsync(CancellationToken.None);
    }

    /// <summary>The stack's services and tasks, and the last lines of the hub's and PostgreSQL's logs.</summary>
    private static async Task<string> DiagnosticsAsync()
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var text = new StringBuilder();
        foreach (var args in new[]
        {
            new[] { "stack", "ps", "--no-trunc", Stack },
            ["service", "ls"],
            ["service", "logs", "--tail", "150", HubService],
            ["service", "logs", "--tail", "40", PostgresService],
        })
        {
            try
            {
                var r = await SwarmLab.DockerAsync(1, args, cts.Token);
                text.AppendLine($"--- docker {string.Join(' ', args)} ---").AppendLine(HubImage.Tail(r.StandardOutput + r.StandardError));
            }
            catch (OperationCanceledException)
            {
                text.AppendLine($"--- docker {string.Join(' ', args)}: timed out ---");
            }
        }

        return text.ToString();
    }
}
