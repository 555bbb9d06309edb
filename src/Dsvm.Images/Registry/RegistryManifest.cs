using System.Text.Json;

namespace Dsvm.Images.Registry;

/// <summary>One entry of an image index (manifest list): a platform's manifest.</summary>
public sealed record ManifestEntry(string Digest, string MediaType, string? Os, string? Architecture);

/// <summary>
/// A parsed manifest: an image (its config blob's digest) or an index of per-platform manifests. Docker's v2
/// schema 2 and the OCI image spec are read alike; schema 1 (deprecated, unsigned) is refused.
/// </summary>
public sealed record RegistryManifest(string MediaType, string? ConfigDigest, IReadOnlyList<ManifestEntry> Manifests)
{
    public const string DockerManifest = "application/vnd.docker.distribution.manifest.v2+json";
    public const string DockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json";
    public const string OciManifest = "application/vnd.oci.image.manifest.v1+json";
    public const string OciIndex = "application/vnd.oci.image.index.v1+json";

    /// <summary>What the client accepts, best first.</summary>
    public static readonly IReadOnlyList<string> Accepted = [OciManifest, DockerManifest, OciIndex, DockerManifestList];

    public bool IsIndex => ConfigDigest is null;

    /// <summary>Parses a manifest body; <paramref name="contentType"/> is used when the body names no media type (allowed by OCI).</summary>
    public static RegistryManifest Parse(string body, string? contentType)
    {
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(body);
        }
        catch (JsonException ex)
        {
            throw new RegistryException($"the registry sent a manifest that is not JSON ({ex.Message.Split('.')[0]})");
        }

        using (doc)
        {
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                throw new RegistryException("the registry sent a manifest that is not a JSON object");
            }

            var mediaType = Str(root, "mediaType") ?? contentType?.Split(';')[0].Trim() ?? "";
            if (mediaType.Length == 0)
            {
                // OCI allows leaving it out: an index has "manifests", an image "config".
                mediaType = root.TryGetProperty("manifests", out _) ? OciIndex : OciManifest;
            }

            switch (mediaType)
            {
                case DockerManifest or OciManifest:
                    var digest = root.TryGetProperty("config", out var config) && config.ValueKind == JsonValueKind.Object ? Str(config, "digest") : null;
                    if (digest is null || !RegistryAddress.IsDigest(digest))
                    {
                        throw new RegistryException($"the registry sent a {mediaType} manifest without a sha256 config digest");
                    }

                    return new RegistryManifest(mediaType, digest, []);
                case DockerManifestList or OciIndex:
                    var entries = new List<ManifestEntry>();
                    if (root.TryGetProperty("manifests", out var list) && list.ValueKind == JsonValueKind.Array)
                    {
                        foreach (var m in list.EnumerateArray())
                        {
                            if (m.ValueKind != JsonValueKind.Object || Str(m, "digest") is not { } d || !RegistryAddress.IsDigest(d))
                            {
                                continue;
                            }

                            var platform = m.TryGetProperty("platform", out var pl) && pl.ValueKind == JsonValueKind.Object ? pl : default;
                            entries.Add(new ManifestEntry(d, Str(m, "mediaType") ?? OciManifest,
                                platform.ValueKind == JsonValueKind.Object ? Str(platform, "os") : null,
                                platform.ValueKind == JsonValueKind.Object ? Str(platform, "architecture") : null));
                        }
                    }

                    return new RegistryManifest(mediaType, null, entries);
                default:
                    throw new RegistryException($"the registry sent a manifest of type '{mediaType}', which is not supported (expected Docker v2 schema 2 or OCI)");
            }
        }
    }

    /// <summary>The index entry for this platform (linux and this process's architecture), else the first linux one.</summary>
    public ManifestEntry? PickPlatform(string architecture)
    {
        var linux = Manifests.Where(m => m.Os is null or "linux" && m.MediaType is DockerManifest or OciManifest).ToList();
        return linux.FirstOrDefault(m => m.Architecture == architecture) ?? linux.FirstOrDefault();
    }

    /// <summary>The architecture name registries use for this process (amd64, arm64, …).</summary>
    public static string CurrentArchitecture => System.Runtime.InteropServices.RuntimeInformation.OSArchitecture switch
    {
        System.Runtime.InteropServices.Architecture.X64 => "amd64",
        System.Runtime.InteropServices.Architecture.Arm64 => "arm64",
        System.Runtime.InteropServices.Architecture.Arm => "arm",
        var other => other.ToString().ToLowerInvariant(),
    };

    /// <summary>The labels (<c>config.Labels</c>) and creation time of an image config blob.</summary>
    public static (IReadOnlyDictionary<string, string> Labels, DateTimeOffset? Created) ParseConfig(string body)
    {
        try
        {
            using var doc = JsonDocument.Parse(body);
            var root = doc.RootElement;
            var labels = new Dictionary<string, string>(StringComparer.Ordinal);
            if (root.ValueKind == JsonValueKind.Object && root.TryGetProperty("config", out var config) && config.ValueKind == JsonValueKind.Object
                && config.TryGetProperty("Labels", out var l) && l.ValueKind == JsonValueKind.Object)
            {
                foreach (var p in l.EnumerateObject().Where(p => p.Value.ValueKind == JsonValueKind.String))
                {
                    labels[p.Name] = p.Value.GetString()!;
                }
            }

            DateTimeOffset? created = root.ValueKind == JsonValueKind.Object && root.TryGetProperty("created", out var c)
                && c.ValueKind == JsonValueKind.String && c.TryGetDateTimeOffset(out var t) ? t : null;
            return (labels, created);
        }
        catch (JsonException ex)
        {
            throw new RegistryException($"the registry sent an image config that is not JSON ({ex.Message.Split('.')[0]})");
        }
    }

    private static string? Str(JsonElement e, string name) =>
        e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;
}
