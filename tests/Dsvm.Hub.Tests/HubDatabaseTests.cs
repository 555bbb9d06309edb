using Dsvm.Cli;
using Dsvm.Core;
using Dsvm.Testing;
using Microsoft.Extensions.Configuration;

namespace Dsvm.Hub.Tests;

/// <summary>Where <c>dsvm hub serve</c> takes its database from, and how a bad one is reported.</summary>
public sealed class HubDatabaseTests
{
    private static readonly Func<string, string?> NoVariables = _ => null;

    [Fact]
    public void Hub_Database_in_the_configuration_file_is_used_and_not_silently_ignored()
    {
        using var dir = new TempDir();
        var file = dir.Write("hub.json", """{"Hub": {"Database": "postgres://dsvm@db.internal/dsvm"}}""");
        var configured = HubDatabase.Configured(null, HubConfiguration.Load(file), NoVariables);
        Assert.NotNull(configured);
        Assert.Equal("postgres://dsvm@db.internal/dsvm", configured.Value);
        Assert.Equal($"Hub:Database in {file}", configured.Source);
    }

    [Fact]
    public void The_flag_wins_then_the_variables_then_the_file()
    {
        using var dir = new TempDir();
        var config = HubConfiguration.Load(dir.Write("hub.json", """{"Hub": {"Database": "Host=file"}}"""));
        var both = new Dictionary<string, string?> { ["DSVM__Hub__Database"] = "Host=nested", ["DSVM_HUB_DATABASE"] = "Host=plain" };
        Assert.Equal(("Host=flag", "--database"), Pair(HubDatabase.Configured("Host=flag", config, v => both.GetValueOrDefault(v))));
        Assert.Equal(("Host=nested", "environment variable DSVM__Hub__Database"), Pair(HubDatabase.Configured(null, config, v => both.GetValueOrDefault(v))));
        Assert.Equal(("Host=plain", "environment variable DSVM_HUB_DATABASE"), Pair(HubDatabase.Configured(null, config, v => v == "DSVM_HUB_DATABASE" ? "Host=plain" : null)));
        Assert.Null(HubDatabase.Configured(" ", new ConfigurationBuilder().Build(), NoVariables));
    }

    [Theory]
    [InlineData("--database")]
    [InlineData("environment variable DSVM_HUB_DATABASE")]
    [InlineData("Hub:Database in /etc/opendsvm/hub.json")]
    public void A_value_that_is_not_a_PostgreSQL_connection_is_one_line_naming_where_it_came_from(string source)
    {
        using var dir = new TempDir();
        var paths = new DsvmPaths(Path.Combine(dir.Path, "data"), Path.Combine(dir.Path, "cache"));
        var ex = Assert.Throws<UsageException>(() => HubDatabase.Open(new HubDatabase.Setting("/data/hub.db", source), paths));
        Assert.StartsWith($"{source} takes a PostgreSQL connection", ex.Message, StringComparison.Ordinal);
        Assert.DoesNotContain('\n', ex.Message);
    }

    private static (string, string)? Pair(HubDatabase.Setting? s) => s is null ? null : (s.Value, s.Source);
}
