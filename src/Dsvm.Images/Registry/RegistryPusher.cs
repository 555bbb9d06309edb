using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Dsvm.Core;

namespace Dsvm.Images.Registry;

/// <summary>What <c>dsvm env push</c> (or <c>env build --push</c>) did.</summary>
public sealed record PushResult(string Environment, string Tag, string Reference, string Digest, string PinnedReference, int ChecksPassed, int ChecksTotal);

/// <summary>
/// Pushes a built, checked environment image to a registry as <c>REGISTRY/dsvm/NAME:TAG</c> (and <c>:latest</c>),
/// with the results of its in-image checks added as labels (a label-only layer: the file system is the one tested).
/// Credentials go to a throw-away Docker client configuration (<c>docker --config</c>), password on standard input,
/// so they never reach a command line or the user's own <c>~/.docker/config.json</c>.
/// </summary>
public sealed partial class RegistryPusher(DockerCli docker, BuildRecordStore records, TimeProvider? time = null)
{
    public const string ChecksPassedLabel = "io.opendsvm.checks.passed";
    public const string ChecksTotalLabel = "io.opendsvm.checks.total";
    public const string ChecksResultsLabel = "io.opendsvm.checks.results";
    public const string CheckedAtLabel = "io.opendsvm.checks.at";

    public async Task<PushResult> PushAsync(string environment, RegistryAddress registry, RegistryLogin? credentials, Action<string>? log, CancellationToken ct)
    {
        var local = $"dsvm/{environment}:latest";
        if (!await docker.ImageExistsAsync(local, ct))
        {
            throw new NotFoundException($"no image {local} in the local engine; build it first: dsvm env build {environment}");
        }

        var tag = await docker.ImageLabelAsync(local, "io.opendsvm.tag", ct)
            ?? throw new UsageException($"{local} has no io.opendsvm.tag label: it was not built by `dsvm env build`; rebuild it");
        var record = records.Find(environment, tag);
        if (record is not { Status: BuildStatus.Succeeded } || record.Checks.Any(c => !c.Passed))
        {
            throw new UsageException(
                $"{local} (tag {tag}) has no passing build record in this data folder; only checked images are pushed: run `dsvm env build {environment}`");
        }

        // Reachability and credentials first, with a one-line answer, before Docker tries (and retries) on its own.
        using (var client = new RegistryClient(registry, credentials, time))
        {
            await client.PingAsync(ct);
        }

        var target = registry.ByTag(environment, tag);
        var latest = registry.ByTag(environment, "latest");
        var passed = record.Checks.Count(c => c.Passed);
        log?.Invoke($"labelling {target} with its check results ({passed}/{record.Checks.Count} passed)");
        var build = await docker.RunAsync(
        [
            "build", "--quiet", "--tag", target, "--tag", latest,
            "--label", $"{ChecksPassedLabel}={passed.ToString(CultureInfo.InvariantCulture)}",
            "--label", $"{ChecksTotalLabel}={record.Checks.Count.ToString(CultureInfo.InvariantCulture)}",
            "--label", $"{ChecksResultsLabel}={JsonSerializer.Serialize(record.Checks.Select(c => c.Id))}",
            "--label", $"{CheckedAtLabel}={record.StartedAt.ToUniversalTime():yyyy-MM-ddTHH:mm:ssZ}",
            "-",
        ], ct, new MemoryStream(Encoding.UTF8.GetBytes($"FROM {local}\n")));
        if (!build.Ok)
        {
            throw new BuildException($"could not label {target}: {build.Tail(2)}");
        }

        var config = Directory.CreateTempSubdirectory("dsvm-docker-config-");
        try
        {
            if (!OperatingSystem.IsWindows())
            {
                File.SetUnixFileMode(config.FullName, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
            }

            await File.WriteAllTextAsync(Path.Combine(config.FullName, "config.json"), "{\"auths\":{}}", ct);
            if (credentials is not null)
            {
                var login = await docker.RunAsync(
                    ["--config", config.FullName, "login", registry.Host, "--username", credentials.Username, "--password-stdin"],
                    ct, new MemoryStream(Encoding.UTF8.GetBytes(credentials.Password)));
                if (!login.Ok)
                {
                    throw new RegistryException($"registry {registry.Host} refused the login of '{credentials.Username}': {login.Tail(1)}");
                }
            }

            string? digest = null;
            foreach (var reference in new[] { target, latest })
            {
                log?.Invoke($"pushing {reference}");
                var push = await docker.RunAsync(["--config", config.FullName, "push", reference], ct);
                if (!push.Ok)
                {
                    throw new RegistryException($"pushing {reference} failed: {push.Tail(1)}");
                }

                digest ??= PushedDigest(push.Stdout)
                    ?? throw new RegistryException($"docker push {reference} printed no digest: {push.Tail(1)}");
            }

            return new PushResult(environment, tag, target, digest!, registry.ByDigest(environment, digest!), passed, record.Checks.Count);
        }
        finally
        {
            config.Delete(recursive: true);
        }
    }

    /// <summary>The manifest digest from <c>docker push</c>'s last line (<c>TAG: digest: sha256:… size: N</c>).</summary>
    internal static string? PushedDigest(string output) =>
        PushDigestLine().Matches(output) is { Count: > 0 } m ? m[^1].Groups[1].Value : null;

    [GeneratedRegex(@"digest: (sha256:[0-9a-f]{64}) size: \d+")]
    private static partial Regex PushDigestLine();
}
