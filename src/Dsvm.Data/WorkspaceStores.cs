using Microsoft.Data.Sqlite;
using Microsoft.EntityFrameworkCore;
using Npgsql;

namespace Dsvm.Data;

/// <summary>Workspace records in SQLite (the embedded default): the file is created 0600, WAL mode, busy timeout.</summary>
public sealed class SqliteWorkspaceStore(string databaseFile) : EfWorkspaceStore(WorkspaceStores.SqliteOptions<DsvmDbContext>(databaseFile));

/// <summary>Factories for the workspace store and the database options of any of this project's contexts.</summary>
public static class WorkspaceStores
{
    public static SqliteWorkspaceStore Sqlite(string databaseFile) => new(databaseFile);

    /// <summary>PostgreSQL; <paramref name="connectionString"/> is Npgsql's "Host=…;Database=…" form or a postgres:// URL.</summary>
    public static EfWorkspaceStore Postgres(string connectionString) => new(PostgresOptions<DsvmDbContext>(connectionString));

    /// <summary>Options for a SQLite file that only its owner may read (tokens live there); the file is made if missing.</summary>
    public static DbContextOptions<TContext> SqliteOptions<TContext>(string databaseFile) where TContext : DbContext
    {
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(databaseFile))!);
        if (!OperatingSystem.IsWindows())
        {
            // Only the owner may read the file. It is created 0600 before SQLite opens it, because SQLite gives the
            // -wal and -shm files (which hold recent writes, tokens included) the database's mode.
            var ownerOnly = UnixFileMode.UserRead | UnixFileMode.UserWrite;
            using (new FileStream(databaseFile, new FileStreamOptions { Mode = FileMode.OpenOrCreate, Access = FileAccess.Write, UnixCreateMode = ownerOnly }))
            {
            }

            foreach (var file in new[] { databaseFile, databaseFile + "-wal", databaseFile + "-shm" }.Where(File.Exists))
            {
                File.SetUnixFileMode(file, ownerOnly);
            }
        }

        var connection = new SqliteConnectionStringBuilder { DataSource = databaseFile, DefaultTimeout = 30, Pooling = true }.ToString();
        return new DbContextOptionsBuilder<TContext>().UseSqlite(connection).Options;
    }

    public static DbContextOptions<TContext> PostgresOptions<TContext>(string connectionString) where TContext : DbContext =>
        new DbContextOptionsBuilder<TContext>().UseNpgsql(PostgresConnection.Normalize(connectionString)).Options;
}

/// <summary>PostgreSQL connection strings: postgres:// URLs to Npgsql's form, and a form safe to log.</summary>
public static class PostgresConnection
{
    /// <summary>True for a postgres:// or postgresql:// URL or a string with Npgsql's Host= key.</summary>
    public static bool IsPostgres(string? database) =>
        !string.IsNullOrWhiteSpace(database) && (IsUrl(database) || TryBuild(database)?.Host is { Length: > 0 });

    /// <summary>Npgsql's keyword form; a postgres://user:password@host:port/db?sslmode=require URL is translated.</summary>
    public static string Normalize(string database)
    {
        if (!IsUrl(database))
        {
            return new NpgsqlConnectionStringBuilder(database).ConnectionString;
        }

        var uri = new Uri(database);
        var b = new NpgsqlConnectionStringBuilder { Host = uri.Host };
        if (uri.Port > 0)
        {
            b.Port = uri.Port;
        }

        if (uri.UserInfo.Length > 0)
        {
            var parts = uri.UserInfo.Split(':', 2);
            b.Username = Uri.UnescapeDataString(parts[0]);
            if (parts.Length > 1)
            {
                b.Password = Uri.UnescapeDataString(parts[1]);
            }
        }

        var name = Uri.UnescapeDataString(uri.AbsolutePath.TrimStart('/'));
        if (name.Length > 0)
        {
            b.Database = name;
        }

        foreach (var pair in uri.Query.TrimStart('?').Split('&', StringSplitOptions.RemoveEmptyEntries))
        {
            var kv = pair.Split('=', 2);
            var key = Uri.UnescapeDataString(kv[0]);
            var value = kv.Length > 1 ? Uri.UnescapeDataString(kv[1]) : "";
            b[key.Equals("sslmode", StringComparison.OrdinalIgnoreCase) ? "SSL Mode" : key] = value;
        }

        return b.ConnectionString;
    }

    /// <summary>The connection string without its password, for logs and messages.</summary>
    public static string Redact(string database)
    {
        try
        {
            var b = new NpgsqlConnectionStringBuilder(Normalize(database));
            if (b.Password is not null)
            {
                b.Password = "***";
            }

            return b.ConnectionString;
        }
        catch (ArgumentException)
        {
            return "(unparseable connection string)";
        }
        catch (UriFormatException)
        {
            return "(unparseable connection string)";
        }
    }

    private static bool IsUrl(string database) =>
        database.StartsWith("postgres://", StringComparison.OrdinalIgnoreCase) || database.StartsWith("postgresql://", StringComparison.OrdinalIgnoreCase);

    private static NpgsqlConnectionStringBuilder? TryBuild(string database)
    {
        try
        {
            return new NpgsqlConnectionStringBuilder(database);
        }
        catch (ArgumentException)
        {
            return null;
        }
    }
}
