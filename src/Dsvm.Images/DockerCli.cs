using System.Text;
using CliWrap;
using CliWrap.EventStream;
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
/// The docker command-line client, called with argument lists (never a shell string). The classic builder is
/// used (<c>DOCKER_BUILDKIT=0</c>) because Debian's engine ships without buildx and no builder image can be pulled.
/// </summary>
public sealed class DockerCli(string executable = "docker")
{
    public string Executable { get; } = executable;

    private Command Command(IEnumerable<string> args) =>
        Cli.Wrap(Executable)
            .WithArguments(args)
            .WithEnvironmentVariables(e => e.Set("DOCKER_BUILDKIT", "0").Set("DOCKER_CLI_HINTS", "false"))
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

    /// <summary>Throws a clear error when the engine does not answer.</summary>
    public async Task<string> EnsureEngineAsync(CancellationToken ct)
    {
        var r = await RunAsync(["version", "--format", "{{.Server.Version}}"], ct);
        if (!r.Ok || string.IsNullOrWhiteSpace(r.Stdout))
        {
            throw new EnvironmentNotReadyException(
                $"the Docker engine is not reachable ({r.Tail(1)}); start it (dockerd) or run ./run.sh, which starts it");
        }

        return r.Stdout.Trim();
    }

    public async Task<bool> ImageExistsAsync(string image, CancellationToken ct) =>
        (await RunAsync(["image", "inspect", "--format", "{{.Id}}", image], ct)).Ok;

    /// <summary>The value of one label of an image, or null.</summary>
    public async Task<string?> ImageLabelAsync(string image, string label, CancellationToken ct)
    {
        var r = await RunAsync(["image", "inspect", "--format", $"{{{{index .Config.Labels \"{label}\"}}}}", image], ct);
        return r.Ok && r.Stdout.Trim() is { Length: > 0 } v && v != "<no value>" ? v : null;
    }
}
