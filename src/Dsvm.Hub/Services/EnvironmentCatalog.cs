using Dsvm.Core.Specs;

namespace Dsvm.Hub.Services;

/// <summary>An environment users can start: a built image.</summary>
public sealed record HubEnvironment(string Name, string Image, GpuMode Gpu, string Description, long SizeBytes);

/// <summary>The environments the hub offers (built images of the local engine, in production).</summary>
public interface IEnvironmentCatalog
{
    Task<IReadOnlyList<HubEnvironment>> ListAsync(CancellationToken ct);

    /// <summary>Why part of the catalog is missing from the last list (e.g. its registry is unreachable); empty when whole.</summary>
    IReadOnlyList<string> Problems => [];
}

/// <summary>A fixed list (tests, or a hub configured with explicit images).</summary>
public sealed class StaticEnvironmentCatalog(IEnumerable<HubEnvironment> environments) : IEnvironmentCatalog
{
    private readonly IReadOnlyList<HubEnvironment> _environments = environments.ToList();

    public Task<IReadOnlyList<HubEnvironment>> ListAsync(CancellationToken ct) => Task.FromResult(_environments);
}
