using System.Net;
using System.Net.Http.Json;
using Dsvm.Core;
using Dsvm.Core.Workspaces;
using CliHubClient = Dsvm.Cli.HubClient;

namespace Dsvm.Hub.Tests;

public sealed class ExecLogsTests : HubTestBase
{
    [Fact]
    public async Task Logs_show_the_last_lines_with_the_workspace_token_masked()
    {
        var alice = await UserTokenClientAsync("alice");
        await StartRunningAsync(alice, "ws1");
        var r = await alice.GetAsync("api/v1/workspaces/alice/ws1/logs").Expect(HttpStatusCode.OK);
        Assert.Equal("text/plain", r.Content.Headers.ContentType?.MediaType);
        var all = await r.Content.ReadAsStringAsync();
        Assert.Contains("lab?token=<token>", all, StringComparison.Ordinal);
        Assert.DoesNotContain(World.Backend.TokenFor("alice", "ws1"), all, StringComparison.Ordinal);

        var tail = await alice.GetStringAsync("api/v1/workspaces/alice/ws1/logs?tail=2");
        Assert.Equal(["[I] log line 9", "[I] log line 10"], tail.Split('\n'));
        Assert.Contains("tail", (await alice.GetAsync("api/v1/workspaces/alice/ws1/logs?tail=0").ExpectProblem(HttpStatusCode.BadRequest)).Str("detail"), StringComparison.Ordinal);

        var bob = await UserTokenClientAsync("bob");
        await bob.GetAsync("api/v1/workspaces/alice/ws1/logs").ExpectProblem(HttpStatusCode.NotFound);
        await (await AdminAsync()).Http.GetAsync("api/v1/workspaces/alice/ws1/logs").Expect(HttpStatusCode.OK);
    }

    [Fact]
    public async Task Exec_answers_exit_code_and_output_within_the_timeout_and_cap()
    {
        var alice = await UserTokenClientAsync("alice");
        await StartRunningAsync(alice, "ws1");
        World.Backend.ExecHandler = req => req.Command[0] == "false"
            ? new WorkspaceExecResult(1, "", "it failed\n", false, false)
            : new WorkspaceExecResult(0, string.Join(' ', req.Command) + "\n", "", false, false);

        var ok = await (await alice.PostAsJsonAsync("api/v1/workspaces/alice/ws1/exec", new { command = new[] { "echo", "hello world" } }).Expect(HttpStatusCode.OK)).JsonAsync();
        Assert.Equal(0, ok.GetProperty("exitCode").GetInt32());
        Assert.Equal("echo hello world\n", ok.Str("stdout"));
        Assert.False(ok.GetProperty("truncated").GetBoolean());
        var sent = Assert.Single(World.Backend.Execs);
        Assert.Equal(["echo", "hello world"], sent.Command);
        Assert.Equal(TimeSpan.FromMinutes(1), sent.Timeout);
        Assert.Equal(1024 * 1024, sent.OutputLimitBytes);

        var failed = await (await alice.PostAsJsonAsync("api/v1/workspaces/alice/ws1/exec", new { command = new[] { "false" }, timeoutSeconds = 5 }).Expect(HttpStatusCode.OK)).JsonAsync();
        Assert.Equal(1, failed.GetProperty("exitCode").GetInt32());
        Assert.Equal("it failed\n", failed.Str("stderr"));
        Assert.Equal(TimeSpan.FromSeconds(5), World.Backend.Execs.Last().Timeout);

        await alice.PostAsJsonAsync("api/v1/workspaces/alice/ws1/exec", new { command = Array.Empty<string>() }).ExpectProblem(HttpStatusCode.BadRequest);
        await alice.PostAsJsonAsync("api/v1/workspaces/alice/ws1/exec", new { command = new[] { "sleep", "1" }, timeoutSeconds = 100_000 }).ExpectProblem(HttpStatusCode.BadRequest);

        // Others' workspaces do not exist for them; read-only tokens cannot exec; admins can.
        var bob = await UserTokenClientAsync("bob");
        await bob.PostAsJsonAsync("api/v1/workspaces/alice/ws1/exec", new { command = new[] { "id" } }).ExpectProblem(HttpStatusCode.NotFound);
        var readOnly = Hub.TokenClient((await CreateTokenAsync(await UserAsync("alice", create: false), [Dsvm.Hub.Data.Scopes.Read])).Str("token"));
        await readOnly.PostAsJsonAsync("api/v1/workspaces/alice/ws1/exec", new { command = new[] { "id" } }).Expect(HttpStatusCode.Forbidden);
        await (await AdminAsync()).Http.PostAsJsonAsync("api/v1/workspaces/alice/ws1/exec", new { command = new[] { "id" } }).Expect(HttpStatusCode.OK);

        // A stopped workspace: 409.
        await alice.PostAsync("api/v1/workspaces/alice/ws1/stop", null).Expect(HttpStatusCode.OK);
        var p = await alice.PostAsJsonAsync("api/v1/workspaces/alice/ws1/exec", new { command = new[] { "id" } }).ExpectProblem(HttpStatusCode.Conflict);
        Assert.Contains("start it first", p.Str("detail"), StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_cli_client_maps_logs_and_exec_to_the_api()
    {
        await CreateUserAsync("alice");
        var login = await CliHubClient.LoginWithPasswordAsync(Hub.Address.ToString(), "alice", PasswordOf("alice"), CancellationToken.None);
        using var hub = new CliHubClient(login);
        await hub.UpAsync("ws1", "minimal", "small", CancellationToken.None);
        var logs = await hub.LogsAsync("ws1", 3, CancellationToken.None);
        Assert.Equal(3, logs.Split('\n').Length);
        var result = await hub.ExecAsync("ws1", ["echo", "hi"], TimeSpan.FromSeconds(30), CancellationToken.None);
        Assert.Equal(0, result.ExitCode);
        Assert.Equal("echo hi\n", result.Stdout);
        Assert.Equal(TimeSpan.FromSeconds(30), World.Backend.Execs.Last().Timeout);
        await Assert.ThrowsAsync<NotFoundException>(() => hub.ExecAsync("nope", ["id"], null, CancellationToken.None));
    }
}

public sealed class ExecUnsupportedTests : HubTestBase
{
    internal override HubOptions Options(HubOptions defaults)
    {
        World.WrapBackend = b => new NoExecBackend(b);
        return defaults;
    }

    [Fact]
    public async Task A_backend_that_cannot_exec_answers_501_with_a_clear_message()
    {
        var alice = await UserTokenClientAsync("alice");
        await StartRunningAsync(alice, "ws1");
        var p = await alice.PostAsJsonAsync("api/v1/workspaces/alice/ws1/exec", new { command = new[] { "id" } }).ExpectProblem(HttpStatusCode.NotImplemented);
        Assert.Contains("cannot run commands in workspaces", p.Str("detail"), StringComparison.Ordinal);
        Assert.Empty(World.Backend.Execs);

        using var cli = new CliHubClient(new Dsvm.Cli.RemoteLogin(Hub.Address.ToString().TrimEnd('/'), "alice", (await CreateTokenAsync(await UserAsync("alice", create: false))).Str("token")));
        var ex = await Assert.ThrowsAsync<DsvmException>(() => cli.ExecAsync("ws1", ["id"], null, CancellationToken.None));
        Assert.Contains("cannot run commands in workspaces", ex.Message, StringComparison.Ordinal);
    }
}

/// <summary>The fake backend without its exec capability.</summary>
internal sealed class NoExecBackend(IWorkspaceBackend inner) : Dsvm.Testing.DelegatingWorkspaceBackend(inner);
