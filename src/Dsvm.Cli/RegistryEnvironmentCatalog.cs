using System.Globalization;
using System.Text.RegularExpressions;
using Dsvm.Core;
using Dsvm.Core.Specs;
using Dsvm.Hub.Services;
using Dsvm.Images.Registry;

namespace Dsvm.Cli;

/// <summary>
/// The hub's environments from an OCI registry: every repository <c>dsvm/NAME</c>, its <c>latest</c> tag (else its
/// last listed tag) resolved to a digest, so a workspace's image is <c>REGISTRY/dsvm/NAME@sha256:…</c> and every node
/// runs exactly the image that was checked and pushed (<paramref name="pullFrom"/>: the registry's address as the
/// engines that pull see it, when it is not the address the hub lists it at). Merged with a local catalog (the engine's images, when a
/// docker backend is configured); the registry's entry wins for a name both have. The list is cached for
/// <see cref="CacheFor"/>; when the registry fails, the local entries are still listed and <see cref="Problems"/> says why.
/// </summary>
public sealed partial class RegistryEnvironmentCatalog(RegistryClient client, IEnvironmentCatalog? local, TimeProvider time, TimeSpan? cacheFor = null,
    RegistryAddress? pullFrom = null)
    : IEnvironmentCatalog, IDisposable
{
    private readonly SemaphoreSlim _gate = new(1, 1);
    private (DateTimeOffset At, IReadOnlyList<HubEnvironment> List, string? Problem)? _cached;

    public TimeSpan CacheFor { get; } = cacheFor ?? TimeSpan.FromSeconds(30);

    public IReadOnlyList<string> Problems => _cached?.Problem is { } p ? [p] : [];

    public async Task<IReadOnlyList<HubEnvironment>> ListAsync(CancellationToken ct)
    {
        await _gate.WaitAsync(ct);
        try
        {
            if (_cached is { } c && time.GetUtcNow() - c.At < CacheFor)
            {
                return c.List;
            }

            string? problem = null;
            IReadOnlyList<HubEnvironment> remote = [];
            try
            {
                remote = await ListRegistryAsync(ct);
            }
            catch (RegistryException ex)
            {
                problem = $"environment registry unavailable: {ex.Message}";
            }

            var merged = remote.ToList();
            if (local is not null)
            {
                merged.AddRange((await local.ListAsync(ct)).Where(l => merged.All(r => r.Name != l.Name)));
            }

            var list = merged.OrderBy(e => e.Name, StringComparer.Ordinal).ToList();
            _cached = (time.GetUtcNow(), list, problem);
            return list;
        }
        finally
        {
            _gate.Release();
        }
    }

    private async Task<IReadOnlyList<HubEnvironment>> ListRegistryAsync(CancellationToken ct)
    {
        var result = new List<HubEnvironment>();
        var prefix = RegistryAddress.Namespace + "/";
        foreach (var repository in await client.ListRepositoriesAsync(prefix, ct))
        {
            var name = repository[prefix.Length..];
            if (!EnvironmentName().IsMatch(name))
            {
                continue; // dsvm/a/b or names the hub would refuse: not an environment
            }

            var tags = await client.ListTagsAsync(repository, ct);
            if (tags.Count == 0)
            {
                continue;
            }

            var tag = tags.Contains("latest") ? "latest" : tags[^1];
            var image = await client.GetImageAsync(repository, tag, ct);
            result.Add(ToEnvironment(pullFrom ?? client.Address, name, image));
        }

        return result;
    }

    internal static HubEnvironment ToEnvironment(RegistryAddress registry, string name, RegistryImage image)
    {
        var gpu = image.Labels.GetValueOrDefault("io.opendsvm.gpu") switch
        {
            "optional" => GpuMode.Optional,
            "required" => GpuMode.Required,
            _ => GpuMode.None,
        };
        var description = image.Labels.GetValueOrDefault("io.opendsvm.description") ?? "";
        if (image.Labels.TryGetValue(RegistryPusher.ChecksPassedLabel, out var passed) && image.Labels.TryGetValue(RegistryPusher.ChecksTotalLabel, out var total)
            && int.TryParse(passed, CultureInfo.InvariantCulture, out _) && int.TryParse(total, CultureInfo.InvariantCulture, out _))
        {
            description = $"{description} ({passed}/{total} checks passed)".TrimStart();
        }

        return new HubEnvironment(name, registry.ByDigest(name, image.Digest), gpu, description, image.SizeBytes);
    }

    /// <summary>Disposes the registry client too (the catalog owns it).</summary>
    public void Dispose()
    {
        _gate.Dispose();
        client.Dispose();
    }

    [GeneratedRegex("^[a-z][a-z0-9-]{0,39}\\z")]
    private static partial Regex EnvironmentName();
}

/// <summary>Picks the hub's catalog from its configuration (kept here so the hub's start-up changes by one line).</summary>
public static class HubEnvironmentCatalogs
{
    /// <summary>
    /// With <c>Hub:Registry:Url</c>: the registry, merged with <paramref name="local"/> when a docker backend is
    /// configured. Without it: <paramref name="local"/> (the engine's images) as before.
    /// </summary>
    public static IEnvironmentCatalog Create(Dsvm.Hub.HubRegistryOptions registry, Func<IEnvironmentCatalog> local, bool dockerBackend, TimeProvider time)
    {
        if (!registry.Enabled)
        {
            return local();
        }

        RegistryAddress address;
        RegistryAddress? pullFrom = null;
        try
        {
            address = RegistryAddress.Parse(registry.Url!);
        }
        catch (Dsvm.Core.UsageException ex)
        {
            throw new Dsvm.Core.UsageException($"hub configuration: key Hub:Registry:Url: {ex.Message}");
        }

        if (!string.IsNullOrWhiteSpace(registry.PullAddress))
        {
            try
            {
                pullFrom = RegistryAddress.Parse(registry.PullAddress);
            }
            catch (Dsvm.Core.UsageException ex)
            {
                throw new Dsvm.Core.UsageException($"hub configuration: key Hub:Registry:PullAddress: {ex.Message}");
            }
        }

        if (string.IsNullOrEmpty(registry.Username) != string.IsNullOrEmpty(registry.Password))
        {
            throw new Dsvm.Core.UsageException("hub configuration: keys Hub:Registry:Username and Hub:Registry:Password go together (set both or neither)");
        }

        if (registry.CacheFor < TimeSpan.Zero || registry.Timeout <= TimeSpan.Zero)
        {
            throw new Dsvm.Core.UsageException("hub configuration: keys Hub:Registry:CacheFor and Hub:Registry:Timeout must be positive durations");
        }

        var credentials = string.IsNullOrEmpty(registry.Username) ? null : new RegistryLogin(registry.Username, registry.Password!);
        var client = new RegistryClient(address, credentials, time, registry.Timeout);
        return new RegistryEnvironmentCatalog(client, dockerBackend ? local() : null, time, registry.CacheFor, pullFrom);
    }
}
