using System.Diagnostics;
using System.Text.Json;
using Dsvm.Core;
using Dsvm.Core.Checks;

namespace Dsvm.Images;

/// <summary>Runs an image's baked self-check in one offline container and reads the results.</summary>
public sealed class CheckRunner(DockerCli docker)
{
    public async Task<IReadOnlyList<CheckResult>> RunAsync(string image, IReadOnlyList<CheckDefinition>? checks, Action<string>? onLine, CancellationToken ct)
    {
        checks ??= await ChecksOfAsync(image, ct);
        var output = new System.Text.StringBuilder();
        var sw = Stopwatch.StartNew();
        var exit = await docker.StreamAsync(
        [
            "run", "--rm", "--network", "none", "--security-opt", "no-new-privileges",
            "--entrypoint", CheckScript.ImagePath, image,
        ], line =>
        {
            output.AppendLine(line);
            onLine?.Invoke(line);
        }, ct);
        var results = CheckScript.Parse(checks, output.ToString());
        if (exit is not 0 and not 1 && results.All(r => r.Passed))
        {
            throw new ChecksFailedException($"the check container of {image} failed (exit {exit}) after {sw.Elapsed.TotalSeconds:F0} s");
        }

        return results;
    }

    /// <summary>The check list an image carries in its <c>io.opendsvm.checks</c> label.</summary>
    public async Task<IReadOnlyList<CheckDefinition>> ChecksOfAsync(string image, CancellationToken ct)
    {
        if (!await docker.ImageExistsAsync(image, ct))
        {
            throw new NotFoundException($"image '{image}' does not exist in the local engine");
        }

        var label = await docker.ImageLabelAsync(image, "io.opendsvm.checks", ct)
            ?? throw new NotFoundException($"image '{image}' was not built by OpenDSVM (no io.opendsvm.checks label)");
        var ids = JsonSerializer.Deserialize<List<string>>(label) ?? [];
        return ids.Select(FromId).ToList();
    }

    internal static CheckDefinition FromId(string id)
    {
        var i = id.IndexOf(':', StringComparison.Ordinal);
        var prefix = id[..i];
        var kind = prefix switch
        {
            "python" => CheckKind.PythonImport,
            "r" => CheckKind.RLibrary,
            "kernel" => CheckKind.Kernel,
            "notebook" => CheckKind.Notebook,
            _ => CheckKind.Command,
        };
        return new CheckDefinition(id, kind, id[(i + 1)..]);
    }
}
