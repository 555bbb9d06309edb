using Dsvm.Core;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Configuration.EnvironmentVariables;

namespace Dsvm.Hub;

/// <summary>
/// The hub's settings from configuration: an optional JSON file (<c>{"Hub": {…}}</c>) and environment variables
/// <c>DSVM__Hub__…</c> (which win), e.g. <c>DSVM__Hub__Oidc__Authority</c>, <c>DSVM__Hub__TrustedProxies__0</c>.
/// </summary>
public static class HubConfiguration
{
    public const string Section = "Hub";

    public const string EnvironmentPrefix = "DSVM__";

    /// <summary>The hub's PostgreSQL connection: read by the CLI's hub command (<c>HubDatabase</c>), not bound onto <see cref="HubOptions"/>.</summary>
    public const string DatabaseKey = "Hub:Database";

    private static readonly string[] ExtraKeys = [DatabaseKey];

    public static IConfiguration Load(string? jsonFile)
    {
        var builder = new ConfigurationBuilder();
        if (!string.IsNullOrEmpty(jsonFile))
        {
            if (!File.Exists(jsonFile))
            {
                throw new NotFoundException($"no hub configuration file '{jsonFile}'");
            }

            builder.AddJsonFile(Path.GetFullPath(jsonFile), optional: false, reloadOnChange: false);
        }

        builder.AddEnvironmentVariables(EnvironmentPrefix);
        try
        {
            return builder.Build();
        }
        catch (Exception ex) when (ex is FormatException or InvalidDataException)
        {
            throw new UsageException($"the hub configuration file '{jsonFile}' is not valid JSON: {ex.Message}");
        }
    }

    /// <summary>
    /// Binds section <c>Hub</c> onto the defaults; a value that does not fit its setting is a clear error, and so is a
    /// key that no setting reads (named with its source: the file, or the environment variable).
    /// </summary>
    public static HubOptions Bind(IConfiguration configuration)
    {
        CheckKeys(configuration);
        try
        {
            return configuration.GetSection(Section).Get<HubOptions>(o => o.ErrorOnUnknownConfiguration = false) ?? new HubOptions();
        }
        catch (InvalidOperationException ex)
        {
            throw new UsageException($"hub configuration: {ex.Message}");
        }
    }

    /// <summary>A <see cref="UsageException"/> (one line) listing every key that binds to nothing, with did-you-mean.</summary>
    public static void CheckKeys(IConfiguration configuration)
    {
        if (configuration is not IConfigurationRoot root)
        {
            return;
        }

        var sections = new Dictionary<string, Type> { [Section] = typeof(HubOptions) };
        var problems = root.Providers.SelectMany(p => ConfigurationKeys.Find(p, sections, ExtraKeys).Select(u => $"unknown key {u.Key} {SourceOf(p, u.Key)}{u.Suggestion}")).ToList();
        if (problems.Count > 0)
        {
            throw new UsageException($"hub configuration: {string.Join("; ", problems)} (see docs/hub.md for the settings)");
        }
    }

    /// <summary>Where a key came from, for messages: "in FILE" or "from environment variable DSVM__…".</summary>
    public static string SourceOf(IConfigurationProvider provider, string key) => provider switch
    {
        FileConfigurationProvider file => $"in {file.Source.FileProvider?.GetFileInfo(file.Source.Path ?? "").PhysicalPath ?? file.Source.Path}",
        EnvironmentVariablesConfigurationProvider => $"from environment variable {EnvironmentPrefix}{key.Replace(ConfigurationPath.KeyDelimiter, "__", StringComparison.Ordinal)}",
        _ => "in the configuration",
    };
}
