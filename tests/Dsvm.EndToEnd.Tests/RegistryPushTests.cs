using CliWrap;
using CliWrap.Buffered;
using Dsvm.Images.Registry;
using Dsvm.Testing;

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
        using var client = new RegistryClient(RegistryAddress.Parse(registry.Host), new RegistryCredentials("pusher", "p4ss word"));
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
}
