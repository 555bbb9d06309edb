using Dsvm.Data;
using Microsoft.Data.Sqlite;
using Microsoft.EntityFrameworkCore;
using Npgsql;

namespace Dsvm.Data.Tests;

/// <summary>
/// The PostgreSQL server of the test run: <c>DSVM_TEST_POSTGRES</c> (test.sh starts one). Without it the PostgreSQL
/// tests are skipped with a visible reason, except under test.sh (<c>DSVM_REQUIRE_POSTGRES=1</c>), where they fail.
/// </summary>
public static class TestPostgres
{
    public static string? ConnectionString => Environment.GetEnvironmentVariable("DSVM_TEST_POSTGRES") is { Length: > 0 } c ? c : null;

    public static string? SkipReason =>
        ConnectionString is not null || Environment.GetEnvironmentVariable("DSVM_REQUIRE_POSTGRES") == "1"
            ? null
            : "DSVM_TEST_POSTGRES is not set (run ./test.sh, which starts a throwaway PostgreSQL)";
}

/// <summary>A test against PostgreSQL: skipped with a visible reason when no server is configured outside test.sh.</summary>
public sealed class PostgresFactAttribute : FactAttribute
{
    public PostgresFactAttribute()
    {
        if (TestPostgres.SkipReason is { } reason)
        {
            Skip = reason;
        }
    }
}

/// <summary>An empty database for one test: a SQLite file in a temp folder, or a fresh PostgreSQL database.</summary>
public interface ITestDatabase : IDisposable
{
    DbContextOptions<TContext> Options<TContext>() where TContext : DbContext;

    EfWorkspaceStore CreateStore();
}

public sealed class SqliteTestDatabase : ITestDatabase
{
    private readonly string _dir = Directory.CreateTempSubdirectory("dsvm-data-tests-").FullName;

    public string File => Path.Combine(_dir, "data", "dsvm.db");

    public string HubFile => Path.Combine(_dir, "data", "hub.db");

    public DbContextOptions<TContext> Options<TContext>() where TContext : DbContext =>
        WorkspaceStores.SqliteOptions<TContext>(typeof(TContext) == typeof(DsvmDbContext) ? File : HubFile);

    public EfWorkspaceStore CreateStore() => WorkspaceStores.Sqlite(File);

    public void Dispose()
    {
        SqliteConnection.ClearAllPools();
        try
        {
            Directory.Delete(_dir, recursive: true);
        }
        catch (IOException)
        {
            // Best effort.
        }
    }
}

/// <summary>Creates <c>dsvm_test_RANDOM</c> on the test server and drops it afterwards.</summary>
public sealed class PostgresTestDatabase : ITestDatabase
{
    private readonly string _admin;

    public PostgresTestDatabase()
    {
        _admin = TestPostgres.ConnectionString
            ?? throw new InvalidOperationException("DSVM_REQUIRE_POSTGRES=1 but DSVM_TEST_POSTGRES is not set: test.sh could not start PostgreSQL");
        Name = "dsvm_test_" + Guid.NewGuid().ToString("N")[..12];
        using var connection = new NpgsqlConnection(_admin);
        connection.Open();
        using var command = new NpgsqlCommand($"CREATE DATABASE \"{Name}\"", connection);
        command.ExecuteNonQuery();
        ConnectionString = new NpgsqlConnectionStringBuilder(_admin) { Database = Name }.ConnectionString;
    }

    public string Name { get; }

    public string ConnectionString { get; }

    public DbContextOptions<TContext> Options<TContext>() where TContext : DbContext => WorkspaceStores.PostgresOptions<TContext>(ConnectionString);

    public EfWorkspaceStore CreateStore() => WorkspaceStores.Postgres(ConnectionString);

    public void Dispose()
    {
        NpgsqlConnection.ClearAllPools();
        using var connection = new NpgsqlConnection(_admin);
        connection.Open();
        using var command = new NpgsqlCommand($"DROP DATABASE IF EXISTS \"{Name}\" WITH (FORCE)", connection);
        command.ExecuteNonQuery();
    }
}
