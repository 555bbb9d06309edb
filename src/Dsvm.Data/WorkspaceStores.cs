using System.Text.Json;
using Dsvm.Core;
using Dsvm.Core.Workspaces;
using Microsoft.Data.Sqlite;
using Microsoft.EntityFrameworkCore;
using Npgsql;

namespace Dsvm.Data;

/// <summary>
/// Workspace records in SQLite (the embedded default): the file is created 0600, WAL mode, busy timeout. A file that
/// cannot be used becomes a one-line <see cref="StateFileException"/> naming it and what to do; a corrupt one
/// (garbage, truncated, a table dropped, a value no version wrote) is first moved aside, never deleted.
/// </summary>
public sealed class SqliteWorkspaceStore : EfWorkspaceStore
{
    private readonly string _file;

    /// <summary>
    /// Opens <paramref name="databaseFile"/> in the background (a CLI command meanwhile loads its configuration and
    /// talks to the engine); a fault of the file is the first operation's <see cref="StateFileException"/>.
    /// </summary>
    public SqliteWorkspaceStore(string databaseFile)
        : base(SqliteStateFile.OpenInBackground(databaseFile)) => _file = databaseFile;

    public override Task<Workspace?> FindAsync(string owner, string name, CancellationToken ct) =>
        SqliteStateFile.GuardAsync(_file, async () => SqliteStateFile.Checked(_file, await base.FindAsync(owner, name, ct)));

    public override Task<IReadOnlyList<Workspace>> ListAsync(string? owner, CancellationToken ct) =>
        SqliteStateFile.GuardAsync(_file, async () =>
        {
            var list = await base.ListAsync(owner, ct);
            foreach (var w in list)
            {
                SqliteStateFile.Checked(_file, w);
            }

            return list;
        });

    public override Task<Workspace> SaveAsync(Workspace workspace, CancellationToken ct) =>
        SqliteStateFile.GuardAsync(_file, () => base.SaveAsync(workspace, ct));

    public override Task DeleteAsync(Workspace workspace, CancellationToken ct) =>
        SqliteStateFile.GuardAsync(_file, async () =>
        {
            await base.DeleteAsync(workspace, ct);
            return true;
        });
}

/// <summary>Turns SQLite state-file faults into <see cref="StateFileException"/>s, moving a corrupt file aside.</summary>
public static class SqliteStateFile
{
    /// <summary>
    /// Starts opening <paramref name="file"/> now; its outcome is translated (a corrupt file moved aside, with the
    /// message saying so) only when an operation first needs it, so a command that never uses the state (or ends
    /// first) neither moves the file nor hides that it did.
    /// </summary>
    public static Lazy<Task<DbContextOptions<DsvmDbContext>>> OpenInBackground(string file)
    {
        var opening = Task.Run(() => Open(file));
        return new(() => GuardAsync(file, () => opening));
    }

    /// <summary>The options for <paramref name="file"/>, once it opens and its schema is up to date (faults untranslated).</summary>
    private static DbContextOptions<DsvmDbContext> Open(string file)
    {
        if (Directory.Exists(file))
        {
            throw new StateFileException($"state file {file} is a directory, not a database: move it away (or set DSVM_DATA to another folder)");
        }

        var options = WorkspaceStores.SqliteOptions<DsvmDbContext>(file);
        using var db = new DsvmDbContext(options);
        DatabaseMigrations.Migrate(db, EfWorkspaceStore.ProbeTable);
        db.Database.ExecuteSqlRaw("PRAGMA journal_mode=WAL;");
        // A file whose table was dropped or damaged answers here, not at the first command that needs it.
        _ = db.Workspaces.AsNoTracking().Select(w => w.Id).FirstOrDefault();
        return options;
    }

    public static async Task<T> GuardAsync<T>(string file, Func<Task<T>> op)
    {
        try
        {
            return await op();
        }
        catch (Exception ex) when (Translate(file, ex) is { } mapped)
        {
            throw mapped;
        }
    }

    /// <summary>A record whose backend state is not JSON is corruption too (every reader would fail on it later).</summary>
    public static Workspace? Checked(string file, Workspace? w)
    {
        if (w is null)
        {
            return null;
        }

        try
        {
            using var _ = JsonDocument.Parse(w.BackendState);
            return w;
        }
        catch (JsonException ex)
        {
            throw Corrupt(file, $"workspace {w.Owner}/{w.Name} has unreadable backend state: {ex.Message}", ex);
        }
    }

    /// <summary>Null for errors that are not the file's (conflicts, cancellation).</summary>
    public static StateFileException? Translate(string file, Exception ex) => ex switch
    {
        StateFileException s => s,
        DsvmException or OperationCanceledException => null,
        UnauthorizedAccessException => ReadOnly(file, ex),
        SqliteException { SqliteErrorCode: 8 or 14 or 23 } => ReadOnly(file, ex), // READONLY, CANTOPEN, AUTH
        SqliteException { SqliteErrorCode: 5 or 6 } => new StateFileException($"state file {file} stayed locked by another process for 30 s ({First(ex)}); try again", ex),
        SqliteException { SqliteErrorCode: 26 or 11 } => Corrupt(file, First(ex), ex), // NOTADB, CORRUPT
        SqliteException { SqliteErrorCode: 1 } when ex.Message.Contains("no such", StringComparison.Ordinal) => Corrupt(file, First(ex), ex), // a dropped table or column
        DbUpdateException { InnerException: { } inner } => Translate(file, inner),
        // A value no version of OpenDSVM writes (an unknown state name, a bad date): EF's conversion throws these.
        ArgumentException or FormatException or InvalidCastException => Corrupt(file, First(ex), ex),
        InvalidOperationException when ex.Message.Contains("from the database", StringComparison.Ordinal) => Corrupt(file, First(ex), ex),
        IOException => new StateFileException($"state file {file} cannot be read: {First(ex)}", ex),
        _ => null,
    };

    private static string First(Exception ex) => ex.Message.Split('\n')[0].Trim();

    private static StateFileException ReadOnly(string file, Exception ex) =>
        new($"state file {file} cannot be written ({First(ex)}): give your user write access to it and its folder (chmod u+w), or set DSVM_DATA", ex);

    /// <summary>Moves the file (and its -wal and -shm files) aside to <c>FILE.corrupt-TIMESTAMP</c>; never deletes.</summary>
    private static StateFileException Corrupt(string file, string why, Exception ex)
    {
        SqliteConnection.ClearAllPools();
        var aside = $"{file}.corrupt-{DateTime.UtcNow:yyyyMMdd'T'HHmmss'Z'}";
        try
        {
            foreach (var suffix in new[] { "", "-wal", "-shm" })
            {
                if (File.Exists(file + suffix))
                {
                    File.Move(file + suffix, aside + suffix);
                }
            }
        }
        catch (Exception moveError) when (moveError is IOException or UnauthorizedAccessException)
        {
            return new StateFileException($"state file {file} is corrupt ({why}) and could not be moved aside ({moveError.Message}): move it away yourself, then run `dsvm doctor --repair`", ex);
        }

        return new StateFileException($"state file {file} is corrupt ({why}); moved it to {aside} (kept, not deleted): run `dsvm doctor --repair` to rebuild the workspace records from the engine's labels", ex);
    }
}

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
