using System.Net;
using System.Net.Http.Json;
using Dsvm.Cli;
using Dsvm.Core.Specs;
using Dsvm.Hub.Services;
using Dsvm.Testing;
using Microsoft.Extensions.Configuration;

namespace Dsvm.Hub.Tests;

/// <summary>
/// The hub's environments from a real registry process (htpasswd auth, credentials from the hub's configuration),
/// merged with the local engine's list, pinned by digest at start, and still answering when the registry goes away.
/// </summary>
[System.Diagnostics.CodeAnalysis.SuppressMessage("Design", "CA1001", Justification = "xunit disposes it through IAsyncLifetime.DisposeAsync")]
public sealed class RegistryCatalogTests : IAsyncLifetime
{
    private readonly HubWorld _world = new();
    private RegistryProcess? _registry;

    public async Task InitializeAsync() => _registry = await RegistryProcess.StartAsync(("hub", "hub secret"));

    public async Task DisposeAsync()
    {
        await _world.DisposeAsync();
        if (_registry is not null)
        {
            await _registry.DisposeAsync();
        }
    }

    [Fact]
    public async Task Lists_registry_environments_pins_workspaces_by_digest_and_survives_the_registry_going_away()
    {
        var registry = _registry!;
        var minimal = await registry.UploadImageAsync("dsvm/minimal", "latest", new Dictionary<string, string>
        {
            ["io.opendsvm.description"] = "Minimal from the registry",
            ["io.opendsvm.gpu"] = "none",
            ["io.opendsvm.checks.passed"] = "9",
            ["io.opendsvm.checks.total"] = "9",
        });
        await registry.UploadImageAsync("dsvm/gpu-lab", "0123abcd", new Dictionary<string, string> { ["io.opendsvm.gpu"] = "optional" }, oci: false);
        await registry.UploadImageAsync("other/thing", "latest", new Dictionary<string, string>());
        await registry.UploadImageAsync("dsvm/deep/er", "latest", new Dictionary<string, string>());

        var local = new StaticEnvironmentCatalog(
        [
            new HubEnvironment("minimal", "dsvm/minimal:latest", GpuMode.None, "local build", 0),
            new HubEnvironment("local-only", "dsvm/local-only:latest", GpuMode.None, "only in the engine", 0),
        ]);
        _world.Environments = HubEnvironmentCatalogs.Create(
            new HubRegistryOptions { Url = registry.Host, Username = "hub", Password = "hub secret" }, () => local, dockerBackend: true, _world.Time);
        var hub = await _world.StartHubAsync();
        using var admin = hub.NewClient();
        await admin.LoginAsync(HubWorld.AdminName, HubWorld.AdminPassword).Expect(HttpStatusCode.OK);

        var r = await admin.Http.GetAsync(new Uri("api/v1/environments", UriKind.Relative)).Expect(HttpStatusCode.OK);
        Assert.False(r.Headers.Contains("Dsvm-Catalog-Problem"));
        var list = (await r.JsonAsync()).EnumerateArray().ToList();
        Assert.Equal(["gpu-lab", "local-only", "minimal"], list.Select(e => e.Str("name")));
        Assert.Equal("Minimal from the registry (9/9 checks passed)", list[2].Str("description"));
        Assert.Equal("optional", list[0].Str("gpu"));

        // A workspace of a registry environment records the image by digest: what every node pulls.
        await admin.Http.PostAsJsonAsync("api/v1/workspaces?wait=true", new { name = "pinned", environment = "minimal", size = "small" }).Expect(HttpStatusCode.OK);
        var record = await _world.Store.FindAsync(HubWorld.AdminName, "pinned", CancellationToken.None);
        Assert.Equal($"{registry.Host}/dsvm/minimal@{minimal}", record!.Image);

        // The registry goes away: after the cache, the local environments are still listed (200, not 500) and a
        // header says which source is missing.
        await registry.DisposeAsync();
        _world.Time.Advance(TimeSpan.FromMinutes(1));
        r = await admin.Http.GetAsync(new Uri("api/v1/environments", UriKind.Relative)).Expect(HttpStatusCode.OK);
        Assert.Contains($"registry {registry.Host} is unreachable", string.Join(' ', r.Headers.GetValues("Dsvm-Catalog-Problem")), StringComparison.Ordinal);
        var down = (await r.JsonAsync()).EnumerateArray().ToList();
        Assert.Equal(["local-only", "minimal"], down.Select(e => e.Str("name")));
        Assert.Equal("local build", down[1].Str("description"));
    }

    /// <summary>
    /// Hub:Registry:PullAddress: the hub lists the registry at its Url and offers the images at the address the
    /// engines pull from (the lab cluster's engine reaches the registry on loopback, the hub's pod at the bridge
    /// gateway; issue 10's end-to-end test found that the hub offered an address its nodes could not pull from).
    /// </summary>
    [Fact]
    public async Task Images_name_the_pull_address_when_one_is_set()
    {
        var registry = _registry!;
        var minimal = await registry.UploadImageAsync("dsvm/minimal", "latest", new Dictionary<string, string> { ["io.opendsvm.gpu"] = "none" });
        using var catalog = (RegistryEnvironmentCatalog)HubEnvironmentCatalogs.Create(
            new HubRegistryOptions { Url = "http://" + registry.Host, PullAddress = "localhost:5001", Username = "hub", Password = "hub secret" },
            () => new StaticEnvironmentCatalog([]), dockerBackend: false, TimeProvider.System);
        var env = Assert.Single(await catalog.ListAsync(CancellationToken.None));
        Assert.Equal($"localhost:5001/dsvm/minimal@{minimal}", env.Image);
        Assert.Empty(catalog.Problems);
    }

    [Theory]
    [InlineData("not a registry", null, null, "key Hub:Registry:Url")]
    [InlineData("127.0.0.1:5000", "user", null, "Hub:Registry:Username and Hub:Registry:Password go together")]
    [InlineData("127.0.0.1:5000", null, null, "key Hub:Registry:PullAddress", "registry")]
    public void Bad_registry_settings_are_named_errors(string url, string? user, string? password, string expected, string? pullAddress = null)
    {
        var ex = Assert.Throws<Dsvm.Core.UsageException>(() => HubEnvironmentCatalogs.Create(
            new HubRegistryOptions { Url = url, Username = user, Password = password, PullAddress = pullAddress }, () => new StaticEnvironmentCatalog([]), dockerBackend: false, TimeProvider.System));
        Assert.Contains(expected, ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Registry_keys_bind_from_the_hub_configuration()
    {
        var config = new Microsoft.Extensions.Configuration.ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Hub:Registry:Url"] = "127.0.0.1:5000",
            ["Hub:Registry:Username"] = "hub",
            ["Hub:Registry:Password"] = "pw",
            ["Hub:Registry:CacheFor"] = "00:00:10",
            ["Hub:Registry:PullAddress"] = "localhost:5001",
        }).Build();
        var options = HubConfiguration.Bind(config);
        Assert.Equal("127.0.0.1:5000", options.Registry.Url);
        Assert.Equal("localhost:5001", options.Registry.PullAddress);
        Assert.Equal(TimeSpan.FromSeconds(10), options.Registry.CacheFor);
        Assert.DoesNotContain("pw", options.Registry.ToString(), StringComparison.Ordinal);
    }
}
