using System.Text.Json;
using System.Text.Json.Serialization;
using Dsvm.Core;
using Dsvm.Core.Checks;

namespace Dsvm.Images;

[JsonConverter(typeof(JsonStringEnumConverter<BuildStatus>))]
public enum BuildStatus
{
    Succeeded,
    Failed,
}

/// <summary>What one build produced, kept on disk next to its log (<c>builds/ENV/TAG.json</c>).</summary>
public sealed record BuildRecord
{
    public required string Environment { get; init; }
    public required string Image { get; init; }
    public required string Tag { get; init; }
    public required string LockDigest { get; init; }
    public required BuildStatus Status { get; init; }
    public required DateTimeOffset StartedAt { get; init; }
    public double Seconds { get; init; }
    public bool Cached { get; init; }
    public string? LogPath { get; init; }
    public string? Failure { get; init; }
    public long SizeBytes { get; init; }
    public IReadOnlyList<CheckResult> Checks { get; init; } = [];

    /// <summary>What the package cache served and fetched during the build; null without a cache or for a cached build.</summary>
    public PackageCacheStats? PackageCache { get; init; }
}

/// <summary>Reads and writes <see cref="BuildRecord"/>s.</summary>
public sealed class BuildRecordStore(DsvmPaths paths)
{
    internal static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web) { WriteIndented = true };

    private string PathFor(string environment, string tag) => Path.Combine(paths.Builds, environment, tag + ".json");

    public void Save(BuildRecord record)
    {
        var file = PathFor(record.Environment, record.Tag);
        Directory.CreateDirectory(Path.GetDirectoryName(file)!);
        var tmp = file + ".tmp";
        File.WriteAllText(tmp, JsonSerializer.Serialize(record, Json));
        File.Move(tmp, file, overwrite: true);
    }

    public BuildRecord? Find(string environment, string tag)
    {
        var file = PathFor(environment, tag);
        return File.Exists(file) ? JsonSerializer.Deserialize<BuildRecord>(File.ReadAllText(file), Json) : null;
    }

    public IReadOnlyList<BuildRecord> All()
    {
        if (!Directory.Exists(paths.Builds))
        {
            return [];
        }

        var result = new List<BuildRecord>();
        foreach (var file in Directory.EnumerateFiles(paths.Builds, "*.json", SearchOption.AllDirectories))
        {
            try
            {
                if (JsonSerializer.Deserialize<BuildRecord>(File.ReadAllText(file), Json) is { } r)
                {
                    result.Add(r);
                }
            }
            catch (JsonException)
            {
                // A damaged record is skipped; the image itself is the source of truth.
            }
        }

        return result.OrderByDescending(r => r.StartedAt).ToList();
    }
}
