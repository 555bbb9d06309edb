using System.Text;
using CliWrap;
using CliWrap.EventStream;
using Docker.DotNet;
using Docker.DotNet.Models;
using Dsvm.Core;

namespace Dsvm.Images;

/// <summary>Result of one docker CLI call.</summary>
public sealed record CliResult(int ExitCode, string Stdout, string Stderr)
{
    public bool Ok => ExitCode == 0;

    /// <summary>The last lines of stderr (or stdout), for error messages.</summary>
    public string Tail(int lines = 8)
    {
        var text = string.IsNullOrWhiteSpace(Stderr) ? Stdout : Stderr;
        return string.Join('\n', text.Split('\n', StringSplitOptions.RemoveEmptyEntries).TakeLast(lines)).Trim();
    }
}

/// <summary>
/// One Docker engine, as the image services use it: questions and small changes (version, image inspect and list,
/// tag, remove) through its API (Docker.DotNet, one connection, no process per call), and what the API cannot do
/// as well through the docker command-line client, called with argument lists (never a shell string) against the
/// same engine (<c>DOCKER_HOST</c> set to <see cref="Endpoint"/>): builds (the classic builder,
/// <c>DOCKER_BUILDKIT=0</c>, because Debian's engine ships without buildx and no builder image can be pulled, with
/// its step-by-step output), <c>docker run</c> of the checks and the lock resolver (streamed output), login and push
/// (the CLI's credential handling), import. Why each stays on the CLI: docs/architecture.md.
/// </summary>
/// <param name="requestTimeout">How long an API call may go unanswered (the docker backend's <c>request-timeout</c>; default 30 s).</param>
public sealed class DockerCli : IDisposable
{
    private readonly Lazy<DockerClient> _api;

    public DockerCli(string executable = "docker", Uri? endpoint = null, TimeSpan? requestTimeout = null)
    {
        Executable = executable;
        var engine = Endpoint = endpoint ?? DockerEndpoint.Default();
        var timeout = requestTimeout ?? DockerEndpoint.DefaultRequestTimeout;
        _api = new(() => new DockerClientConfiguration(engine, defaultTimeout: timeout).CreateClient());
    }

    public string Executable { get; }

    /// <summary>The engine: the one the docker backend starts workspaces on (see <c>BackendFactory.ImageEngine</c>).</summary>
    public Uri Endpoint { get; }

    /// <summary>The engine's API (connected on first use).</summary>
    public IDockerClient Api => _api.Value;

    public void Dispose()
    {
        if (_api.IsValueCreated)
        {
            _api.Value.Dispose();
        }
    }

    private Command Command(IEnumerable<string> args) =>
        Cli.Wrap(Executable)
            .WithArguments(args)
            .WithEnvironmentVariables(e => e.Set("DOCKER_BUILDKIT", "0").Set("DOCKER_CLI_HINTS", "false").Set("DOCKER_HOST", Endpoint.ToString()))
            .WithValidation(CommandResultValidation.None);

    public async Task<CliResult> RunAsync(IEnumerable<string> args, CancellationToken ct, Stream? stdin = null)
    {
        var stdout = new StringBuilder();
        var stderr = new StringBuilder();
        var cmd = Command(args)
            .WithStandardOutputPipe(PipeTarget.ToStringBuilder(stdout))
            .WithStandardErrorPipe(PipeTarget.ToStringBuilder(stderr));
        if (stdin is not null)
        {
            cmd = cmd.WithStandardInputPipe(PipeSource.FromStream(stdin));
        }

        try
        {
            var result = await cmd.ExecuteAsync(ct);
            return new CliResult(result.ExitCode, stdout.ToString(), stderr.ToString());
        }
        catch (System.ComponentModel.Win32Exception)
        {
            throw new EnvironmentNotReadyException($"'{Executable}' was not found; install Docker (apt-get install docker.io)");
        }
    }

    /// <summary>Runs and streams each output line (stdout and stderr) to <paramref name="onLine"/>.</summary>
    public async Task<int> StreamAsync(IEnumerable<string> args, Action<string> onLine, CancellationToken ct, Stream? stdin = null)
    {
        var cmd = Command(args);
        if (stdin is not null)
        {
            cmd = cmd.WithStandardInputPipe(PipeSource.FromStream(stdin));
        }

        var exit = -1;
        try
        {
            await foreach (var ev in cmd.ListenAsync(ct))
            {
                switch (ev)
                {
                    case StandardOutputCommandEvent o:
                        onLine(o.Text);
                        break;
                    case StandardErrorCommandEvent e:
                        onLine(e.Text);
                        break;
                    case ExitedCommandEvent x:
                        exit = x.ExitCode;
                        break;
                }
            }
        }
        catch (System.ComponentModel.Win32Exception)
        {
            throw new EnvironmentNotReadyException($"'{Executable}' was not found; install Docker (apt-get install docker.io)");
        }

        return exit;
    }

    /// <summary>The engine's version; a clear error when it does not answer.</summary>
    public async Task<string> EnsureEngineAsync(CancellationToken ct)
    {
        try
        {
            return (await Api.System.GetVersionAsync(ct)).Version;
        }
        catch (Exception ex) when (ex is HttpRequestException or IOException or TimeoutException or DockerApiException
            || (ex is OperationCanceledException && !ct.IsCancellationRequested))
        {
            throw new EnvironmentNotReadyException(
                $"the Docker engine at {Endpoint} is not reachable ({Dsvm.Core.Workspaces.EngineFaults.Reason(ex)}); start it (dockerd) or run ./run.sh, which starts it");
        }
    }

    /// <summary>The image's inspection, or null when the engine has no such image.</summary>
    public async Task<ImageInspectResponse?> InspectImageAsync(string image, CancellationToken ct)
    {
        try
        {
            return await Api.Images.InspectImageAsync(image, ct);
        }
        catch (DockerImageNotFoundException)
        {
            return null;
        }
        catch (DockerApiException ex) when (ex.StatusCode is System.Net.HttpStatusCode.NotFound or System.Net.HttpStatusCode.BadRequest)
        {
            // 400: a reference the engine cannot parse names no image either.
            return null;
        }
    }

    public async Task<bool> ImageExistsAsync(string image, CancellationToken ct) => await InspectImageAsync(image, ct) is not null;

    /// <summary>The value of one label of an image, or null.</summary>
    public async Task<string?> ImageLabelAsync(string image, string label, CancellationToken ct) =>
        (await InspectImageAsync(image, ct))?.Config?.Labels is { } labels && labels.TryGetValue(label, out var v) && v.Length > 0 ? v : null;

    /// <summary>The images that carry <paramref name="label"/> (<c>name</c> or <c>name=value</c>), with their tags and labels, in one call.</summary>
    public async Task<IList<ImagesListResponse>> ListImagesAsync(string label, CancellationToken ct) =>
        await Api.Images.ListImagesAsync(new ImagesListParameters
        {
            Filters = new Dictionary<string, IDictionary<string, bool>> { ["label"] = new Dictionary<string, bool> { [label] = true } },
        }, ct);

    /// <summary>Tags <paramref name="source"/> as <paramref name="target"/> (<c>repository:tag</c>), replacing the tag's previous image.</summary>
    public Task TagAsync(string source, string target, CancellationToken ct)
    {
        var (repository, tag) = Dsvm.Core.ImageReferences.SplitTag(target);
        return Api.Images.TagImageAsync(source, new ImageTagParameters { RepositoryName = repository, Tag = tag, Force = true }, ct);
    }

    /// <summary>Removes a tag (the image goes with its last tag); nothing when there is no such image.</summary>
    public async Task RemoveImageAsync(string image, CancellationToken ct)
    {
        try
        {
            await Api.Images.DeleteImageAsync(image, new ImageDeleteParameters(), ct);
        }
        catch (DockerImageNotFoundException)
        {
        }
    }
}
