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
        var inspected = await docker.InspectImageAsync(image, ct)
            ?? throw new NotFoundException($"image '{image}' does not exist in the local engine; build it with `dsvm env build`");
        var labels = inspected.Config?.Labels ?? new Dictionary<string, string>();
        string Label(string name) => labels.TryGetValue(name, out var v) ? v : "";
        var env = Label("io.opendsvm.environment");
        var tag = Label("io.opendsvm.tag");
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
            Id = inspected.ID,
            Environment = env,
            Lock = Label("io.opendsvm.lock"),
            Gpu = Label("io.opendsvm.gpu"),
            Kernels = Label("io.opendsvm.kernels").Split(',', StringSplitOptions.RemoveEmptyEntries),
            SizeBytes = inspected.Size,
            Created = new DateTimeOffset(DateTime.SpecifyKind(inspected.Created, DateTimeKind.Utc)),
            Build = env.Length > 0 && tag.Length > 0 ? records.Find(env, tag) : null,
            Packages = packages,
        };
    }

    public async Task<IReadOnlyList<ImageSummary>> ListAsync(CancellationToken ct)
    {
        var result = new List<ImageSummary>();
        foreach (var image in await docker.ListImagesAsync("io.opendsvm.environment", ct))
        {
            foreach (var reference in image.RepoTags ?? [])
            {
                var (repository, tag) = ImageReferences.SplitTag(reference);
                if (tag is "latest" or "<none>" || !repository.StartsWith("dsvm/", StringComparison.Ordinal))
                {
                    continue;
                }

                var env = repository["dsvm/".Length..];
                var record = records.Find(env, tag);
                var checks = record is null ? "unknown" : $"{record.Checks.Count(c => c.Passed)}/{record.Checks.Count} passed";
                result.Add(new ImageSummary(env, reference, tag, image.Size, new DateTimeOffset(DateTime.SpecifyKind(image.Created, DateTimeKind.Utc)), checks));
            }
        }

        return result.OrderBy(x => x.Environment, StringComparer.Ordinal).ThenByDescending(x => x.Created).ToList();
    }
}
