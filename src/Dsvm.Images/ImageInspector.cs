using System.Globalization;
using Dsvm.Core;

namespace Dsvm.Images;

/// <summary>One installed package of an image (the SBOM row).</summary>
public sealed record PackageInfo(string Name, string Version, long InstalledKiB);

/// <summary>What <c>dsvm env inspect</c> reports about an image.</summary>
public sealed record ImageReport
{
    public required string Image { get; init; }
    public required string Id { get; init; }
    public string Environment { get; init; } = "";
    public string Lock { get; init; } = "";
    public string Gpu { get; init; } = "";
    public IReadOnlyList<string> Kernels { get; init; } = [];
    public long SizeBytes { get; init; }
    public DateTimeOffset Created { get; init; }
    public BuildRecord? Build { get; init; }
    public IReadOnlyList<PackageInfo> Packages { get; init; } = [];
}

/// <summary>A built environment image as <c>dsvm env list</c> shows it.</summary>
public sealed record ImageSummary(string Environment, string Image, string Tag, long SizeBytes, DateTimeOffset Created, string Checks);

public sealed class ImageInspector(DockerCli docker, BuildRecordStore records)
{
    public async Task<ImageReport> InspectAsync(string image, CancellationToken ct)
    {
        var r = await docker.RunAsync(
            ["image", "inspect", "--format", "{{.Id}}\t{{.Size}}\t{{.Created}}", image], ct);
        if (!r.Ok)
        {
            throw new NotFoundException($"image '{image}' does not exist in the local engine; build it with `dsvm env build`");
        }

        var parts = r.Stdout.Trim().Split('\t');
        async Task<string> Label(string name) => await docker.ImageLabelAsync(image, name, ct) ?? "";
        var env = await Label("io.opendsvm.environment");
        var tag = await Label("io.opendsvm.tag");
        var sbom = await docker.RunAsync(
        [
            "run", "--rm", "--network", "none", "--entrypoint", "dpkg-query", image,
            "-W", "-f", "${db:Status-Abbrev}\t${Package}\t${Version}\t${Installed-Size}\n",
        ], ct);
        var packages = sbom.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(l => l.Split('\t'))
            .Where(f => f.Length == 4 && f[0].StartsWith("ii", StringComparison.Ordinal))
            .Select(f => new PackageInfo(f[1], f[2], long.TryParse(f[3], CultureInfo.InvariantCulture, out var k) ? k : 0))
            .OrderBy(p => p.Name, StringComparer.Ordinal)
            .ToList();
        return new ImageReport
        {
            Image = image,
            Id = parts[0],
            Environment = env,
            Lock = await Label("io.opendsvm.lock"),
            Gpu = await Label("io.opendsvm.gpu"),
            Kernels = (await Label("io.opendsvm.kernels")).Split(',', StringSplitOptions.RemoveEmptyEntries),
            SizeBytes = long.Parse(parts[1], CultureInfo.InvariantCulture),
            Created = DateTimeOffset.TryParse(parts[2], CultureInfo.InvariantCulture, out var c) ? c : default,
            Build = env.Length > 0 && tag.Length > 0 ? records.Find(env, tag) : null,
            Packages = packages,
        };
    }

    public async Task<IReadOnlyList<ImageSummary>> ListAsync(CancellationToken ct)
    {
        var r = await docker.RunAsync(
        [
            "images", "--filter", "label=io.opendsvm.environment",
            "--format", "{{.Repository}}\t{{.Tag}}\t{{.ID}}",
        ], ct);
        var result = new List<ImageSummary>();
        foreach (var line in r.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            var f = line.Split('\t');
            if (f.Length < 3 || f[1] is "latest" or "<none>" || !f[0].StartsWith("dsvm/", StringComparison.Ordinal))
            {
                continue;
            }

            var env = f[0]["dsvm/".Length..];
            var image = $"{f[0]}:{f[1]}";
            var info = await docker.RunAsync(["image", "inspect", "--format", "{{.Size}}\t{{.Created}}", image], ct);
            var parts = info.Stdout.Trim().Split('\t');
            var record = records.Find(env, f[1]);
            var checks = record is null ? "unknown" : $"{record.Checks.Count(c => c.Passed)}/{record.Checks.Count} passed";
            result.Add(new ImageSummary(env, image, f[1],
                parts.Length > 0 && long.TryParse(parts[0], CultureInfo.InvariantCulture, out var s) ? s : 0,
                parts.Length > 1 && DateTimeOffset.TryParse(parts[1], CultureInfo.InvariantCulture, out var c) ? c : default,
                checks));
        }

        return result.OrderBy(x => x.Environment, StringComparer.Ordinal).ThenByDescending(x => x.Created).ToList();
    }
}
