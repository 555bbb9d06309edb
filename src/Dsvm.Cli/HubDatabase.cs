using Dsvm.Core;
using Dsvm.Core.Workspaces;
using Dsvm.Data;
using Dsvm.Hub.Data;
using Microsoft.EntityFrameworkCore;

namespace Dsvm.Cli;

/// <summary>
/// Where the hub keeps its state: SQLite files in the data folder by default; PostgreSQL (workspaces and accounts in
/// one database) with <c>--database</c>, <c>DSVM__Hub__Database</c> or <c>DSVM_HUB_DATABASE</c>.
/// </summary>
public sealed record HubDatabase(IWorkspaceStore Store, DbContextOptions<HubDbContext>? AccountsDb, string Description)
{
    public static string? Configured(string? option) =>
        new[] { option, Environment.GetEnvironmentVariable("DSVM__Hub__Database"), Environment.GetEnvironmentVariable("DSVM_HUB_DATABASE") }
            .FirstOrDefault(v => !string.IsNullOrWhiteSpace(v));

    public static HubDatabase Open(string? database, DsvmPaths paths)
    {
        if (database is null)
        {
            return new HubDatabase(new SqliteWorkspaceStore(paths.Database), null, $"SQLite in {paths.Data}");
        }

        if (!PostgresConnection.IsPostgres(database))
        {
            throw new UsageException("--database takes a PostgreSQL connection: postgres://user@host/db or \"Host=…;Database=…;Username=…\"");
        }

        // Only the redacted form is ever shown: connection strings may hold a password.
        return new HubDatabase(WorkspaceStores.Postgres(database), WorkspaceStores.PostgresOptions<HubDbContext>(database),
            $"PostgreSQL {PostgresConnection.Redact(database)}");
    }
}
