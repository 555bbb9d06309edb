using CliWrap;
using CliWrap.Buffered;
using Dsvm.Core;
using Dsvm.Core.Sizes;
using Dsvm.Core.Workspaces;
using Dsvm.Docker;
using Dsvm.Images.Registry;
using Dsvm.Testing;
using Dsvm.Testing.Jupyter;

namespace Dsvm.EndToEnd.Tests;

/// <summary>
/// <c>dsvm env build --push</c> and <c>dsvm env push</c> against a real registry process with htpasswd
/// authentication, with the real engine pushing the real <c>minimal</c> image.
/// </summary>
public sealed class RegistryPushTests
{
    private static readonly Dictionary<string, string> NoCredentials = new()
    {
        [RegistryCredentialStore.UsernameVariable] = "",
        [RegistryCredentialStore.PasswordVariable] = "",
    };

    [DockerFact]
    public async Task Build_with_push_labels_the_checked_image_and_prints_its_digest_with_credentials_from_configuration()
    {
        var (dir, record) = await BuiltEnvironment.GetAsync("minimal");
        await using var registry = await RegistryProcess.StartAsync(("pusher", "p4ss word"));
        var credentials = new Dictionary<string, string>
        {
            [RegistryCredentialStore.UsernameVariable] = "pusher",
            [RegistryCredentialStore.PasswordVariable] = "p4ss word",
        };

        // Bad syntax: one line, usage exit code, nothing built or pushed.
        var bad = await Dsvm.RunWithAsync(credentials, "env", "push", "minimal", "not_a registry");
        Assert.Equal(2, bad.ExitCode);
        Assert.Contains("is not a registry address", bad.Stdout + bad.Stderr, StringComparison.Ordinal);
        Assert.Single((bad.Stdout + bad.Stderr).Trim().Split('\n'));

        // No credentials configured, then wrong ones: the registry's answer in one line, exit code 13.
        var anonymous = await Dsvm.RunWithAsync(NoCredentials, "env", "push", "minimal", registry.Host);
        Assert.Equal(13, anonymous.ExitCode);
        Assert.Contains("requires credentials", anonymous.Stdout + anonymous.Stderr, StringComparison.Ordinal);
        var wrong = await Dsvm.RunWithAsync(new Dictionary<string, string>(credentials) { [RegistryCredentialStore.PasswordVariable] = "nope" }, "env", "push", "minimal", registry.Host);
        Assert.Equal(13, wrong.ExitCode);
        Assert.Contains("refused the credentials of user 'pusher'", wrong.Stdout + wrong.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("nope", wrong.Stderr + wrong.Stdout, StringComparison.Ordinal);

        // The real push: build (cached) then push, JSON output carries the digest.
        var pushed = await Dsvm.RunWithAsync(credentials, "env", "build", dir, "--frozen", "--push", registry.Host, "--output", "json");
        Assert.True(pushed.ExitCode == 0, pushed.ToString());
        var push = pushed.Json.GetProperty("push");
        var digest = push.GetProperty("digest").GetString()!;
        Assert.True(RegistryAddress.IsDigest(digest), digest);
        Assert.Equal($"{registry.Host}/dsvm/minimal@{digest}", push.GetProperty("pinnedReference").GetString());
        Assert.Equal(record.Tag, push.GetProperty("tag").GetString());

        // What the registry now serves: the same digest under both tags, with the labels the hub reads.
        using var client = new RegistryClient(RegistryAddress.Parse(registry.Host), new RegistryLogin("pusher", "p4ss word"));
        Assert.Equal(["dsvm/minimal"], await client.ListRepositoriesAsync("dsvm/", CancellationToken.None));
        Assert.Equal(new[] { "latest", record.Tag }.Order(StringComparer.Ordinal), (await client.ListTagsAsync("dsvm/minimal", CancellationToken.None)).Order(StringComparer.Ordinal));
        var image = await client.GetImageAsync("dsvm/minimal", "latest", CancellationToken.None);
        Assert.Equal(digest, image.Digest);
        Assert.Equal(digest, (await client.GetImageAsync("dsvm/minimal", record.Tag, CancellationToken.None)).Digest);
        // The lock digest label of the tested image (the build record's digest can differ when the base was aligned).
        Assert.Equal(await BuiltEnvironment.Services.Docker.ImageLabelAsync(record.Image, "io.opendsvm.lock", CancellationToken.None), image.Labels["io.opendsvm.lock"]);
        Assert.StartsWith("sha256:", image.Labels["io.opendsvm.lock"], StringComparison.Ordinal);
        Assert.Equal("none", image.Labels["io.opendsvm.gpu"]);
        Assert.False(string.IsNullOrEmpty(image.Labels["io.opendsvm.description"]));
        Assert.Equal(record.Checks.Count.ToString(System.Globalization.CultureInfo.InvariantCulture), image.Labels[RegistryPusher.ChecksPassedLabel]);
        Assert.Equal(image.Labels[RegistryPusher.ChecksPassedLabel], image.Labels[RegistryPusher.ChecksTotalLabel]);
        Assert.Contains(record.Checks[0].Id, image.Labels[RegistryPusher.ChecksResultsLabel], StringComparison.Ordinal);

        // `env push` of the same image again: same digest (the label layer is reproducible), text output names it.
        var again = await Dsvm.RunWithAsync(credentials, "env", "push", "minimal", registry.Host);
        Assert.True(again.ExitCode == 0, again.ToString());
        Assert.Contains($"{registry.Host}/dsvm/minimal@{digest}", again.Stdout, StringComparison.Ordinal);

        // The registry is gone: one line, exit 13.
        await registry.DisposeAsync();
        var down = await Dsvm.RunWithAsync(credentials, "env", "push", "minimal", registry.Host);
        Assert.Equal(13, down.ExitCode);
        Assert.Contains($"registry {registry.Host} is unreachable", down.Stdout + down.Stderr, StringComparison.Ordinal);

        await Cli.Wrap("docker").WithArguments(["rmi", $"{registry.Host}/dsvm/minimal:{record.Tag}", $"{registry.Host}/dsvm/minimal:latest"])
            .WithValidation(CommandResultValidation.None).ExecuteBufferedAsync();
    }

    /// <summary>
    /// Issue 10 part 1 on the default backend: a registry catalog's image (<c>REGISTRY/dsvm/NAME@sha256:…</c>) that
    /// the engine does not have is pulled by digest at start, with the configured login; without one the start
    /// fails with the registry named and nothing started (before, the start failed with "not in the local engine").
    /// </summary>
    [DockerFact]
    public async Task The_docker_backend_pulls_a_registry_image_by_digest_with_the_configured_login()
    {
        await BuiltEnvironment.GetAsync("minimal");
        await using var registry = await RegistryProcess.StartAsync(("puller", "s3cret pw"));
        var credentials = new Dictionary<string, string>
        {
            [RegistryCredentialStore.UsernameVariable] = "puller",
            [RegistryCredentialStore.PasswordVariable] = "s3cret pw",
        };
        var pushed = await Dsvm.RunWithAsync(credentials, "env", "push", "minimal", registry.Host, "--output", "json");
        Assert.True(pushed.ExitCode == 0, pushed.ToString());
        var pinned = pushed.Json.GetProperty("pinnedReference").GetString()!;
        Assert.StartsWith($"{registry.Host}/dsvm/minimal@sha256:", pinned, StringComparison.Ordinal);
        // The push tagged the image for the registry in this engine: untag it, so the engine has no copy by that name.
        var repo = $"{registry.Host}/dsvm/minimal";
        var tags = await Cli.Wrap("docker").WithArguments(["image", "ls", "--format", "{{.Repository}}:{{.Tag}}", repo])
            .WithValidation(CommandResultValidation.None).ExecuteBufferedAsync();
        foreach (var tag in tags.StandardOutput.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            await Cli.Wrap("docker").WithArguments(["rmi", tag]).WithValidation(CommandResultValidation.None).ExecuteBufferedAsync();
        }

        Assert.NotEqual(0, (await Docker("image", "inspect", pinned)).ExitCode);

        var homeId = WorkspaceIds.NewHomeId();
        var request = new WorkspaceStartRequest
        {
            Id = WorkspaceIds.NewWorkspaceId(), Name = "pulled", Owner = "pull", OwnerId = WorkspaceIds.LocalOwnerId, HomeId = homeId,
            HomeVolume = WorkspaceIds.HomeObjectName(homeId), Image = pinned, Size = new MachineSize("small", 1, 1, 0, SizeClass.General),
            Token = Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(16)), BaseUrl = "/user/pull/pulled/",
        };

        // No login for that registry: refused by the registry, said with its name, nothing started.
        {
            var anonymous = new DockerWorkspaceBackend(new DockerBackendOptions(), new NoGpus());
            var refused = await Assert.ThrowsAsync<WorkspaceStartException>(() => anonymous.StartAsync(request, null, default));
            Assert.Equal(WorkspaceFailure.Image, refused.Reason);
            Assert.Contains($"could not pull '{pinned}' from {registry.Host} (no login is configured for {registry.Host})", refused.Message, StringComparison.Ordinal);
            Assert.Equal("", (await Docker("ps", "-aq", "--filter", $"label=io.opendsvm.workspace={request.Id}")).StandardOutput.Trim());
        }

        // With the configured login (as the hub passes Hub:Registry's): pulled by digest, started from exactly that image.
        var backend = new DockerWorkspaceBackend(new DockerBackendOptions
        {
            Logins = host => host == registry.Host ? new RegistryLogin("puller", "s3cret pw") : null,
        }, new NoGpus());
        var said = new List<string>();
        var launch = await backend.StartAsync(request, new SyncProgress(p => said.Add(p.Message)), default);
        try
        {
            Assert.Contains($"pulling {pinned}", said);
            Assert.Equal(0, (await Docker("image", "inspect", pinned)).ExitCode);
            var container = launch.Handle.State.GetProperty("container").GetString()!;
            Assert.Equal(pinned, (await Docker("inspect", "-f", "{{.Config.Image}}", container)).StandardOutput.Trim());
            Assert.True((await backend.GetStatusAsync(launch.Handle, default)).Running);
        }
        finally
        {
            await backend.DeleteAsync(launch.Handle, request.HomeVolume, keepHome: false, default);
            await Docker("rmi", pinned);
        }
    }

    private static Task<BufferedCommandResult> Docker(params string[] args) =>
        Cli.Wrap("docker").WithArguments(args).WithValidation(CommandResultValidation.None).ExecuteBufferedAsync();

    private sealed class SyncProgress(Action<WorkspaceProgress> onReport) : IProgress<WorkspaceProgress>
    {
        public void Report(WorkspaceProgress value) => onReport(value);
    }
}
