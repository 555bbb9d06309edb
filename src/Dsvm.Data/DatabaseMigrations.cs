using System.Data;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Migrations;

namespace Dsvm.Data;

/// <summary>
/// Applies a context's migrations. Databases made before migrations existed (by <c>EnsureCreated</c>: the tables are
/// there, the migrations history is not) are first marked as being at the initial migration, so their tables are kept.
/// </summary>
public static class DatabaseMigrations
{
    /// <summary>Id of the first migration of every context here.</summary>
    public const string InitialMigration = "20261125000000_Initial";

    /// <summary>Id of the migration that adds the workspaces' version column.</summary>
    public const string WorkspaceVersionMigration = "20261205000000_WorkspaceVersion";

    public static void Migrate(DbContext db, string probeTable)
    {
        BaselineEnsureCreated(db, probeTable);
        // Up to date (the usual case, every CLI run): no need to take EF's migrations lock at all.
        if (db.Database.GetPendingMigrations().Any())
        {
            db.Database.Migrate();
        }
    }

    public static async Task MigrateAsync(DbContext db, string probeTable, CancellationToken ct)
    {
        BaselineEnsureCreated(db, probeTable);
        if ((await db.Database.GetPendingMigrationsAsync(ct)).Any())
        {
            await db.Database.MigrateAsync(ct);
        }
    }

    /// <summary>True when <paramref name="probeTable"/> exists but the migrations history does not; then records the initial migration as applied.</summary>
    public static bool BaselineEnsureCreated(DbContext db, string probeTable)
    {
        var history = db.GetService<IHistoryRepository>();
        if (history.Exists() || !TableExists(db, probeTable))
        {
            return false;
        }

        var script = history.GetCreateIfNotExistsScript() + history.GetInsertScript(new HistoryRow(InitialMigration, ProductInfo.GetVersion()));
        db.Database.ExecuteSqlRaw(script);
        return true;
    }

    private static bool TableExists(DbContext db, string table)
    {
        var connection = db.Database.GetDbConnection();
        var opened = connection.State != ConnectionState.Open;
        if (opened)
        {
            connection.Open();
        }

        try
        {
            using var command = connection.CreateCommand();
            command.CommandText = db.Database.ProviderName == "Microsoft.EntityFrameworkCore.Sqlite"
                ? "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = @name"
                : "SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = @name";
            var parameter = command.CreateParameter();
            parameter.ParameterName = "@name";
            parameter.Value = table;
            command.Parameters.Add(parameter);
            return Convert.ToInt64(command.ExecuteScalar(), System.Globalization.CultureInfo.InvariantCulture) > 0;
        }
        finally
        {
            if (opened)
            {
                connection.Close();
            }
        }
    }
}
