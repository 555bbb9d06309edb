using System.Text.Json;
using Dsvm.Core;
using Dsvm.Core.Specs;
using Dsvm.Core.Workspaces;
using Dsvm.Testing;

namespace Dsvm.Docker.IntegrationTests;

/// <summary>
/// Issue 9, "what must work" 1 and 7: a home made by the previous release (volume <c>dsvm-home-OWNER-NAME</c>, no
/// owner-id or home labels, container <c>dsvm-OWNER-NAME</c>, files of uid 1000) is found again after the upgrade,
/// on the CLI (<c>LegacyLocalHomeAsync</c>) and on the hub (<c>AdoptLegacyRecordsAsync</c>, run at the hub's start),
/// and its files become the workspace user's (uid 65530) at start, intact.
/// The previous release's image is the current one with its user moved back to uid/gid 1000 (<see cref="PreviousImageAsync"/>).
/// </summary>
[Trait("Requires", "Docker")]
[Collection("docker")]
public sealed class UpgradeTests
{
    private readonly WorkspaceStack _stack = new();

    private static async Task RunAsync(params string[] args)
    {
        var r = await WorkspaceStack.Docker.RunAsync(args, default);
        Assert.True(r.Ok, $"docker {string.Join(' ', args)}: {r.Stderr}");
    }

    /// <summary>The current image with the user the previous release's images had: dsvm, uid/gid 1000, owning /home/dsvm.</summary>
    private static async Task<string> PreviousImageAsync(string image)
    {
        var tag = $"dsvm-test/previous:{image[(image.LastIndexOf(':') + 1)..]}";
        if ((await WorkspaceStack.Docker.RunAsync(["image", "inspect", tag], default)).Ok)
        {
            return tag;
        }

        var dir = Directory.CreateTempSubdirectory("dsvm-previous-");
        try
        {
            await File.WriteAllTextAsync(Path.Combine(dir.FullName, "Dockerfile"),
                $"FROM {image}\nUSER 0:0\nRUN usermod -u 1000 dsvm && groupmod -g 1000 dsvm && chown -R 1000:1000 /home/dsvm\nUSER 1000:1000\n");
            await RunAsync("build", "-q", "-t", tag, dir.FullName);
        }
        finally
        {
            dir.Delete(recursive: true);
        }

        return tag;
    }

    /// <summary>The previous release's home and (stopped) container for OWNER/NAME, with files of uid 1000 (one of uid 1234).</summary>
    private static async Task MakeLegacyAsync(string owner, string name, string workspaceId, string currentImage)
    {
        var image = await PreviousImageAsync(currentImage);
        var volume = $"dsvm-home-{owner}-{name}";
        var container = $"dsvm-{owner}-{name}";
        await WorkspaceStack.Docker.RunAsync(["rm", "-f", container], default);
        await WorkspaceStack.Docker.RunAsync(["volume", "rm", "-f", volume], default);
        await RunAsync("volume", "create", "--label", "io.opendsvm.managed=true", "--label", $"io.opendsvm.workspace={workspaceId}", volume);
        // The new volume gets the previous image's home (owned by uid 1000); a file someone else owns stays theirs.
        await RunAsync("run", "--rm", "--user", "0:0", "--network", "none", "--entrypoint", "/bin/sh", "-v", $"{volume}:/home/dsvm", image, "-c",
            "test \"$(stat -c %u /home/dsvm)\" = 1000 && echo other > /home/dsvm/other.txt && chown 1234:1234 /home/dsvm/other.txt");
        await RunAsync("create", "--name", container, "--label", "io.opendsvm.managed=true", "--label", $"io.opendsvm.workspace={workspaceId}",
            "--user", "1000:1000", "--network", "none", "--entrypoint", "/bin/sh", "-v", $"{volume}:/home/dsvm", image, "-c",
            "umask 077 && mkdir -p /home/dsvm/private/deep && echo secret > /home/dsvm/private/notes.txt && echo deeper > /home/dsvm/private/deep/x.txt && ln -s private/notes.txt /home/dsvm/link");
        await RunAsync("start", "-a", container);
    }

    private async Task<string> ExecAsync(Workspace w, string script)
    {
        var r = await _stack.Backend.ExecAsync(w.Handle, new WorkspaceExecRequest { Command = ["sh", "-c", script], Timeout = TimeSpan.FromSeconds(30), OutputLimitBytes = 65536 }, default);
        Assert.True(r.ExitCode == 0, $"{script}: exit {r.ExitCode}: {r.Stderr}");
        return r.Stdout.Trim();
    }

    /// <summary>The workspace user reads and writes every file the previous release's uid made, and the other owner's file stays theirs.</summary>
    private async Task AssertTakenOverAsync(Workspace w)
    {
        Assert.Equal("65530", await ExecAsync(w, "id -u"));
        Assert.Equal("secret|deeper|secret", await ExecAsync(w, "echo \"$(cat private/notes.txt)|$(cat private/deep/x.txt)|$(cat link)\""));
        Assert.Equal("65530:65530\n65530:65530\n65530:65530\n65530:65530\n65530:65530\n1234:1234",
            await ExecAsync(w, "stat -c %u:%g . private private/notes.txt private/deep/x.txt link other.txt"));
        await ExecAsync(w, "echo more >> private/notes.txt && touch private/deep/new");
    }

    [DockerFact]
    public async Task The_cli_finds_the_previous_releases_home_and_gives_its_files_to_the_workspace_user()
    {
        const string name = "upg-cli";
        var (_, record) = await BuiltEnvironment.GetAsync("minimal");
        await _stack.CleanupAsync(name);
        try
        {
            await MakeLegacyAsync(WorkspaceStack.Owner, name, WorkspaceIds.NewWorkspaceId(), record.Image);
            // `dsvm rm NAME` of the previous release kept the home and removed the container.
            await RunAsync("rm", $"dsvm-{WorkspaceStack.Owner}-{name}");

            // Still on the previous release's image (its tag is what the CLI recorded before `dsvm env build`): no
            // passwd entry for 65530, HOME set by the backend.
            var w = await _stack.UpAsync(name, image: await PreviousImageAsync(record.Image));

            Assert.Equal($"dsvm-home-{WorkspaceStack.Owner}-{name}", w.HomeVolume);
            await AssertTakenOverAsync(w);

            // The second start finds the home taken over already and changes nothing.
            await _stack.Manager.StopAsync(WorkspaceStack.Owner, name, null, default);
            w = await _stack.Manager.StartAsync(WorkspaceStack.Owner, name, GpuMode.None, null, default);
            Assert.Equal("secret\nmore", await ExecAsync(w, "cat private/notes.txt"));
        }
        finally
        {
            await _stack.CleanupAsync(name);
        }
    }

    [DockerFact]
    public async Task The_hub_adopts_the_previous_releases_record_and_gives_its_home_to_the_new_uid()
    {
        const string owner = "upg-old";
        const string name = "data";
        const string ownerId = "u-0ld000000001";
        var (_, record) = await BuiltEnvironment.GetAsync("minimal");
        var id = WorkspaceIds.NewWorkspaceId();
        await CleanupAsync(owner, name);
        try
        {
            await MakeLegacyAsync(owner, name, id, record.Image);
            var old = (await WorkspaceStack.Docker.RunAsync(["inspect", "--format", "{{.Id}}", $"dsvm-{owner}-{name}"], default)).Stdout.Trim();
            var now = DateTimeOffset.UtcNow;
            // The previous release's record: no owner or home ID, the name-based home, its (now exited) container.
            await _stack.Store.SaveAsync(new Workspace
            {
                Id = id, Name = name, Owner = owner, Environment = "minimal", Image = record.Image, Size = "small", Backend = "docker",
                HomeVolume = $"dsvm-home-{owner}-{name}", Token = new string('a', 64), State = WorkspaceState.Stopped, CreatedAt = now, UpdatedAt = now,
                ContainerId = old, BackendState = JsonSerializer.Serialize(new { container = old, name = $"dsvm-{owner}-{name}" }),
            }, default);

            // What the hub does at start.
            Assert.True(await _stack.Manager.AdoptLegacyRecordsAsync(o => o == owner ? ownerId : null, default) >= 1);
            var adopted = await _stack.Manager.GetAsync(owner, name, default);
            Assert.Equal(ownerId, adopted.OwnerId);
            var home = Assert.Single(await _stack.Store.ListHomesAsync(ownerId, default));
            Assert.Equal($"dsvm-home-{owner}-{name}", home.Volume);

            var w = await _stack.Manager.StartAsync(owner, name, GpuMode.None, null, default);

            Assert.Equal($"dsvm-home-{owner}-{name}", w.HomeVolume);
            Assert.NotEqual(old, w.ContainerId);
            Assert.False((await WorkspaceStack.Docker.RunAsync(["inspect", old], default)).Ok, "the previous release's container is replaced");
            await AssertTakenOverAsync(w);
        }
        finally
        {
            await CleanupAsync(owner, name);
        }
    }

    private async Task CleanupAsync(string owner, string name)
    {
        try
        {
            await _stack.Manager.DeleteAsync(owner, name, deleteHome: true, null, default);
        }
        catch (NotFoundException)
        {
        }

        await WorkspaceStack.Docker.RunAsync(["rm", "-f", $"dsvm-{owner}-{name}"], default);
        await WorkspaceStack.Docker.RunAsync(["volume", "rm", "-f", $"dsvm-home-{owner}-{name}"], default);
    }
}
