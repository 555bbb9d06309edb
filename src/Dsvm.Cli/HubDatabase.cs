using Dsvm.Core;
using Dsvm.Core.Workspaces;
using Dsvm.Data;
using Dsvm.Hub;
using Dsvm.Hub.Data;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Configuration;

namespace Dsvm.Cli;

/// <summary>
/// Where the hub keeps its state: SQLite files in the data folder by default; PostgreSQL (workspaces and accounts in
/// one database) with <c>--database</c>, <c>DSVM__Hub__Database</c>, <c>DSVM_HUB_DATABASE</c> or <c>Hub:Database</c>
/// in the <c>--config</c> file, in that order.
/// </summary>
public sealed record HubDatabase(IWorkspaceStore Store, DbContextOptions<HubDbContext>? AccountsDb, string Description)
{
    /// <summary>A configured connection and where it came from, for messages (never the value: it may hold a password).</summary>
    public sealed record Setting(string Value, string Source);

    public static Setting? Configured(string? option, IConfiguration configuration) =>
        Configured(option, configuration, Environment.GetEnvironmentVariable);

    public static Setting? Configured(string? option, IConfiguration configuration, Func<string, string?> variable)
    {
        if (!string.IsNullOrWhiteSpace(option))
        {
            return new Setting(option, "--database");
        }

        foreach (var name in new[] { "DSVM__Hub__Database", "DSVM_HUB_DATABASE" })
        {
            if (variable(name) is { } value && !string.IsNullOrWhiteSpace(value))
            {
                return new Setting(value, $"environment variable {name}");
            }
        }

        // The file's Hub:Database (a DSVM__Hub__Database variable was taken above, as the variables win over the file).
        return configuration is IConfigurationRoot root
            && root.Providers.Reverse().OfType<FileConfigurationProvider>().Select(p => p.TryGet(HubConfiguration.DatabaseKey, out var v) ? (p, v) : default)
                .FirstOrDefault(x => !string.IsNullOrWhiteSpace(x.v)) is { p: { } file, v: { } fromFile }
            ? new Setting(fromFile, $"{HubConfiguration.DatabaseKey} {HubConfiguration.SourceOf(file, HubConfiguration.DatabaseKey)}")
            : null;
    }

    public static HubDatabase Open(Setting? database, DsvmPaths paths)
    {
        if (database is null)
        {
            return new HubDatabase(new SqliteWorkspaceStore(paths.Database), null, $"SQLite in {paths.Data}");
        }

        if (!PostgresConnection.IsPostgres(database.Value))
        {
            throw new UsageException($"{database.Source} takes a PostgreSQL connection: postgres://user@host/db or \"Host=…;Database=…;Username=…\"");
        }

        // Only the redacted form is ever shown: connection strings may hold a password.
        return new HubDatabase(WorkspaceStores.Postgres(database.Value), WorkspaceStores.PostgresOptions<HubDbContext>(database.Value),
            $"PostgreSQL {PostgresConnection.Redact(database.Value)}");
    }
}
