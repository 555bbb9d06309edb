using System.Net;
using Dsvm.Cli;
using Dsvm.Core;
using Dsvm.Core.Workspaces;
using CliHubClient = Dsvm.Cli.HubClient;

namespace Dsvm.Hub.Tests;

/// <summary>The CLI's hub client (what <c>dsvm login</c>, <c>up</c>, <c>ls</c>… use when logged in) against a real hub.</summary>
public sealed class CliRemoteTests : HubTestBase
{
    private string ConfigDir => Path.Combine(World.Root, "xdg", "opendsvm");

    private string HubUrl => Hub.Address.ToString();

    [Fact]
    public async Task Login_with_a_password_stores_a_token_readable_only_by_its_owner()
    {
        await CreateUserAsync("alice");
        var config = new RemoteConfig(ConfigDir);
        Assert.Null(config.Load());

        var login = await CliHubClient.LoginWithPasswordAsync(HubUrl, "alice", PasswordOf("alice"), CancellationToken.None);
        config.Save(login);
        Assert.Equal("alice", login.User);
        Assert.StartsWith("dsvm_", login.Token, StringComparison.Ordinal);
        if (!OperatingSystem.IsWindows())
        {
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(config.FilePath));
        }

        var loaded = config.Load();
        Assert.Equal(login, loaded);
        using var client = new CliHubClient(loaded!);
        Assert.Equal("alice", (await client.MeAsync(CancellationToken.None)).Name);

        // A token login checks the token; environment variables win over the file.
        var byToken = await CliHubClient.LoginWithTokenAsync(HubUrl, login.Token, CancellationToken.None);
        Assert.Equal("alice", byToken.User);
        var fromEnv = new RemoteConfig(ConfigDir, "http://elsewhere:1", "dsvm_x").Load();
        Assert.Equal("http://elsewhere:1", fromEnv!.Url);

        // Logout revokes the token (best effort) and deletes the file.
        await client.RevokeAsync(CancellationToken.None);
        Assert.True(config.Delete());
        Assert.Null(config.Load());
        using var revoked = new CliHubClient(login);
        var ex = await Assert.ThrowsAsync<EnvironmentNotReadyException>(() => revoked.MeAsync(CancellationToken.None));
        Assert.Contains("dsvm login", ex.Message, StringComparison.Ordinal);

        await Assert.ThrowsAsync<ForbiddenException>(() =>
            CliHubClient.LoginWithPasswordAsync(HubUrl, "alice", "wrong-password", CancellationToken.None));
    }

    [Fact]
    public async Task Up_ls_stop_start_resize_and_rm_act_through_the_hub()
    {
        await CreateUserAsync("alice");
        var login = await CliHubClient.LoginWithPasswordAsync(HubUrl, "alice", PasswordOf("alice"), CancellationToken.None);
        using var hub = new CliHubClient(login);
        var ct = CancellationToken.None;

        var w = await hub.UpAsync("ws1", "minimal", "small", ct);
        Assert.Equal(WorkspaceState.Running, w.State);
        Assert.Equal(login.Hub + "/user/alice/ws1/lab", await hub.BrowserUrlAsync("ws1", ct));
        var list = await hub.ListAsync(ct);
        Assert.Equal("ws1", Assert.Single(list).Name);

        Assert.Equal(WorkspaceState.Stopped, (await hub.StopAsync("ws1", ct)).State);
        Assert.Equal(WorkspaceState.Running, (await hub.StartAsync("ws1", ct)).State);
        var resized = await hub.ResizeAsync("ws1", "medium", ct);
        Assert.Equal("medium", resized.Size);
        Assert.Equal(WorkspaceState.Running, resized.State);

        var deletesBefore = World.Backend.Deletes.Count;
        await hub.DeleteAsync("ws1", deleteHome: true, ct);
        Assert.False(World.Backend.Deletes.Skip(deletesBefore).Single().KeepHome);
        Assert.Empty(await hub.ListAsync(ct));

        // Errors become the CLI's exceptions (and so its exit codes).
        var notFound = await Assert.ThrowsAsync<NotFoundException>(() => hub.StopAsync("nope", ct));
        Assert.Equal(ExitCodes.NotFound, ExitCodes.For(notFound));
        await Assert.ThrowsAsync<NotFoundException>(() => hub.UpAsync("ws2", "minimal", "no-such-size", ct));
        await Assert.ThrowsAsync<UsageException>(() => hub.UpAsync("Not_Valid", "minimal", "small", ct));
        var forbidden = await Assert.ThrowsAsync<ForbiddenException>(() => hub.ListClassesAsync(ct));
        Assert.Equal(ExitCodes.Forbidden, ExitCodes.For(forbidden));
    }

    [Fact]
    public async Task An_admin_creates_lists_exports_and_removes_a_class()
    {
        var login = await CliHubClient.LoginWithPasswordAsync(HubUrl, HubWorld.AdminName, HubWorld.AdminPassword, CancellationToken.None);
        using var hub = new CliHubClient(login);
        var ct = CancellationToken.None;

        var created = await hub.CreateClassAsync("intro", "minimal", "small", 2, prestart: false, prefix: "s", ct);
        Assert.Equal(["s-01", "s-02"], created.Users.Select(u => u.Name));
        var csvPath = Path.Combine(World.Root, "intro-credentials.csv");
        RemoteCommands.WriteCredentialsCsv(csvPath, login.Hub, created.Users);
        var written = File.ReadAllLines(csvPath);
        Assert.Equal(["user,password,url", $"s-01,{created.Users[0].Password},{login.Hub}/user/s-01/intro/lab"], written[..2]);
        Assert.Equal(3, written.Length);
        if (!OperatingSystem.IsWindows())
        {
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(csvPath));
        }

        var cls = Assert.Single(await hub.ListClassesAsync(ct));
        Assert.Equal(2, cls.Members);

        var csv = await hub.ClassCredentialsCsvAsync("intro", ct);
        Assert.StartsWith("user,password,url\n", csv, StringComparison.Ordinal);
        var fresh = RemoteCommands.ParseCredentialsCsv(csv);
        Assert.Equal(["s-01", "s-02"], fresh.Select(u => u.Name));
        await Hub.NewClient().LoginAsync("s-01", created.Users[0].Password).Expect(HttpStatusCode.Unauthorized);
        await Hub.NewClient().LoginAsync("s-01", fresh[0].Password).Expect(HttpStatusCode.OK);

        var teardown = await hub.DeleteClassAsync("intro", deleteHomes: false, ct);
        Assert.Equal(2, teardown.Users);
        await Assert.ThrowsAsync<NotFoundException>(() => hub.DeleteClassAsync("intro", false, ct));
    }

    [Fact]
    public async Task An_admin_lists_reassigns_and_purges_orphaned_homes()
    {
        var ct = CancellationToken.None;
        var alice = await UserAsync("alice");
        await StartRunningAsync(alice.Http, "proj");
        await CreateUserAsync("bob");
        using var hub = new CliHubClient(await CliHubClient.LoginWithPasswordAsync(HubUrl, HubWorld.AdminName, HubWorld.AdminPassword, ct));
        Assert.Empty(await hub.ListHomesAsync(orphaned: true, ct));
        var home = Assert.Single(await hub.ListHomesAsync(orphaned: false, ct));
        Assert.Equal("proj", home.UsedBy);

        await (await AdminAsync()).Http.DeleteAsync("api/v1/users/alice").Expect(HttpStatusCode.NoContent);
        Assert.Equal(home.Id, Assert.Single(await hub.ListHomesAsync(orphaned: true, ct)).Id);
        var moved = await hub.ReassignHomeAsync(home.Id, "bob", "old-proj", ct);
        Assert.Equal(("bob", "old-proj", false), (moved.Owner, moved.Name, moved.Orphaned));
        await Assert.ThrowsAsync<NotFoundException>(() => hub.ReassignHomeAsync(home.Id, "nobody", null, ct));

        await hub.PurgeHomeAsync(home.Id, ct);
        Assert.Empty(await hub.ListHomesAsync(orphaned: false, ct));
        await Assert.ThrowsAsync<NotFoundException>(() => hub.PurgeHomeAsync(home.Id, ct));
    }
}
