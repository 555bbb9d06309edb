namespace Dsvm.Data.Tests;

public sealed class PostgresConnectionTests
{
    [Fact]
    public void Url_IsTranslated_ToNpgsqlForm()
    {
        var cs = PostgresConnection.Normalize("postgres://dsvm:s3cr%40t@db.example:6543/hub?sslmode=require");
        var b = new Npgsql.NpgsqlConnectionStringBuilder(cs);
        Assert.Equal("db.example", b.Host);
        Assert.Equal(6543, b.Port);
        Assert.Equal("dsvm", b.Username);
        Assert.Equal("s3cr@t", b.Password);
        Assert.Equal("hub", b.Database);
        Assert.Equal(Npgsql.SslMode.Require, b.SslMode);
    }

    [Theory]
    [InlineData("postgres://dsvm:hunter22@db/hub")]
    [InlineData("Host=db;Database=hub;Username=dsvm;Password=hunter22")]
    public void Redact_HidesThePassword(string database)
    {
        Assert.True(PostgresConnection.IsPostgres(database));
        var redacted = PostgresConnection.Redact(database);
        Assert.DoesNotContain("hunter22", redacted, StringComparison.Ordinal);
        Assert.Contains("db", redacted, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("")]
    [InlineData("/var/lib/dsvm/dsvm.db")]
    public void NotPostgres(string database) => Assert.False(PostgresConnection.IsPostgres(database));
}
