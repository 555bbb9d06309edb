using Dsvm.Core;
using Microsoft.Extensions.Configuration;

namespace Dsvm.Hub;

/// <summary>
/// The hub's settings from configuration: an optional JSON file (<c>{"Hub": {…}}</c>) and environment variables
/// <c>DSVM__Hub__…</c> (which win), e.g. <c>DSVM__Hub__Oidc__Authority</c>, <c>DSVM__Hub__TrustedProxies__0</c>.
/// </summary>
public static class HubConfiguration
{
    public const string Section = "Hub";

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

        builder.AddEnvironmentVariables("DSVM__");
        try
        {
            return builder.Build();
        }
        catch (Exception ex) when (ex is FormatException or InvalidDataException)
        {
            throw new UsageException($"the hub configuration file '{jsonFile}' is not valid JSON: {ex.Message}");
        }
    }

    /// <summary>Binds section <c>Hub</c> onto the defaults; a value that does not fit its setting is a clear error.</summary>
    public static HubOptions Bind(IConfiguration configuration)
    {
        try
        {
            return configuration.GetSection(Section).Get<HubOptions>(o => o.ErrorOnUnknownConfiguration = false) ?? new HubOptions();
        }
        catch (InvalidOperationException ex)
        {
            throw new UsageException($"hub configuration: {ex.Message}");
        }
    }
}
