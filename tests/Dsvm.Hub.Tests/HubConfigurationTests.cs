using Dsvm.Core;
using Microsoft.Extensions.Configuration;

namespace Dsvm.Hub.Tests;

/// <summary>What <c>dsvm hub serve</c> reads from DSVM__Hub__… variables and --config files.</summary>
public sealed class HubConfigurationTests
{
    private static HubOptions Bind(Dictionary<string, string?> values) =>
        HubConfiguration.Bind(new ConfigurationBuilder().AddInMemoryCollection(values).Build());

    [Fact]
    public void Oidc_proxies_limits_and_unlimited_quotas_bind_from_configuration()
    {
        var o = Bind(new()
        {
            ["Hub:Oidc:Authority"] = "https://keycloak.example.org/realms/dsvm",
            ["Hub:Oidc:ClientId"] = "dsvm-hub",
            ["Hub:Oidc:Scopes:0"] = "openid",
            ["Hub:Oidc:Scopes:1"] = "groups",
            ["Hub:Oidc:AutoCreateUsers"] = "false",
            ["Hub:Oidc:DefaultQuota:MaxVcpus"] = "",
            ["Hub:TrustedProxies:0"] = "127.0.0.1",
            ["Hub:MaxFailedLoginsPerAddress"] = "12",
            ["Hub:LoginWindow"] = "00:10:00",
            ["Hub:DefaultQuota:MaxGpus"] = "",
        });
        Assert.True(o.Oidc.Enabled);
        Assert.Equal("dsvm-hub", o.Oidc.ClientId);
        Assert.Equal(["openid", "groups"], o.Oidc.Scopes);
        Assert.False(o.Oidc.AutoCreateUsers);
        Assert.True(o.Oidc.RequireHttpsMetadata);
        Assert.Null(o.Oidc.DefaultQuota!.MaxVcpus);
        Assert.Equal(["127.0.0.1"], o.TrustedProxies);
        Assert.Equal(12, o.MaxFailedLoginsPerAddress);
        Assert.Equal(TimeSpan.FromMinutes(10), o.LoginWindow);
        Assert.Null(o.DefaultQuota.MaxGpus);
        Assert.Equal(3, o.DefaultQuota.MaxWorkspaces);
        Assert.Equal("http://127.0.0.1:8000", o.Listen);
    }

    [Fact]
    public void Nothing_configured_is_the_defaults_and_bad_values_are_clear_errors()
    {
        Assert.Equal(new HubOptions().Listen, Bind([]).Listen);
        Assert.False(Bind([]).Oidc.Enabled);
        var ex = Assert.Throws<UsageException>(() => Bind(new() { ["Hub:MaxFailedLogins"] = "many" }));
        Assert.Contains("hub configuration", ex.Message, StringComparison.Ordinal);
        Assert.Throws<NotFoundException>(() => HubConfiguration.Load("/nonexistent/hub.json"));
    }
}
