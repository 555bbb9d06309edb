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

    [Fact]
    public void An_unknown_key_in_the_config_file_is_an_error_naming_the_file_with_did_you_mean()
    {
        var file = Path.Combine(Path.GetTempPath(), $"dsvm-hub-{Guid.NewGuid():N}.json");
        File.WriteAllText(file, """{"Hub": {"IdelTimeout": "00:10:00", "Oidc": {"ClientID": "x", "Scopse": ["openid"]}, "TrustedProxies": ["127.0.0.1"]}}""");
        try
        {
            var ex = Assert.Throws<UsageException>(() => HubConfiguration.Bind(HubConfiguration.Load(file)));
            Assert.DoesNotContain('\n', ex.Message);
            Assert.Contains($"unknown key Hub:IdelTimeout in {file} (did you mean 'Hub:IdleTimeout'?)", ex.Message, StringComparison.Ordinal);
            Assert.Contains("unknown key Hub:Oidc:Scopse", ex.Message, StringComparison.Ordinal);
            Assert.Contains("'Hub:Oidc:Scopes'", ex.Message, StringComparison.Ordinal);
            // Keys match case-insensitively, as the binder does.
            Assert.DoesNotContain("ClientID", ex.Message, StringComparison.Ordinal);
            Assert.DoesNotContain("TrustedProxies", ex.Message, StringComparison.Ordinal);
        }
        finally
        {
            File.Delete(file);
        }
    }

    [Fact]
    public void An_unknown_DSVM_variable_is_an_error_naming_the_variable()
    {
        const string typo = "DSVM__Hub__IdelTimeout";
        Environment.SetEnvironmentVariable(typo, "00:10:00");
        try
        {
            var ex = Assert.Throws<UsageException>(() => HubConfiguration.Bind(HubConfiguration.Load(null)));
            Assert.Contains($"unknown key Hub:IdelTimeout from environment variable {typo} (did you mean 'Hub:IdleTimeout'?)", ex.Message, StringComparison.Ordinal);
        }
        finally
        {
            Environment.SetEnvironmentVariable(typo, null);
        }
    }

    [Theory]
    [InlineData("Hbu:IdleTimeout", "Hbu", "'Hub'")]
    [InlineData("Hub:DefaultQuota:MaxGpu", "Hub:DefaultQuota:MaxGpu", "'Hub:DefaultQuota:MaxGpus'")]
    [InlineData("Hub:Oidc:DefaultQuota:MaxVcpu", "Hub:Oidc:DefaultQuota:MaxVcpu", "'Hub:Oidc:DefaultQuota:MaxVcpus'")]
    [InlineData("Hub:TrustedProxies:first", "Hub:TrustedProxies:first", null)]
    [InlineData("Hub:Listen:Port", "Hub:Listen:Port", null)]
    [InlineData("Hub:Oidc:Enabled", "Hub:Oidc:Enabled", null)]
    [InlineData("Hub:Completely:Different", "Hub:Completely", null)]
    public void Unknown_keys_are_found_at_every_depth(string key, string reported, string? suggestion)
    {
        var ex = Assert.Throws<UsageException>(() => Bind(new() { [key] = "1" }));
        Assert.Contains($"unknown key {reported} in the configuration", ex.Message, StringComparison.Ordinal);
        if (suggestion is not null)
        {
            Assert.Contains($"(did you mean {suggestion}?)", ex.Message, StringComparison.Ordinal);
        }
        else
        {
            Assert.DoesNotContain("did you mean", ex.Message, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void Every_setting_and_the_database_key_are_known()
    {
        var o = Bind(new()
        {
            ["Hub:Database"] = "postgres://x@127.0.0.1/db",
            ["hub:idletimeout"] = "00:05:00",
            ["Hub:Oidc:Scopes:0"] = "openid",
            ["Hub:Oidc:DefaultQuota:MaxWorkspaces"] = "2",
            ["Hub:ExecOutputLimitBytes"] = "10",
            ["Hub:WorkspaceDomain"] = "*.ws.example.org",
        });
        Assert.Equal(TimeSpan.FromMinutes(5), o.IdleTimeout);
    }
}
