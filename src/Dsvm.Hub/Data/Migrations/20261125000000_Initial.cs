using Dsvm.Data;
using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Migrations;

namespace Dsvm.Hub.Data.Migrations;

/// <summary>
/// Users and API tokens. Hand-written and provider-neutral: no column types are named, so SQLite and PostgreSQL each
/// map the CLR types themselves (the model's converted DateTimeOffset columns are stored as UTC DateTime).
/// </summary>
[DbContext(typeof(HubDbContext))]
[Migration(DatabaseMigrations.InitialMigration)]
public sealed class Initial : Migration
{
    protected override void Up(MigrationBuilder migrationBuilder)
    {
        migrationBuilder.CreateTable(
            name: "users",
            columns: table => new
            {
                Id = table.Column<string>(nullable: false),
                Name = table.Column<string>(nullable: false),
                PasswordHash = table.Column<string>(nullable: false),
                IsAdmin = table.Column<bool>(nullable: false),
                CreatedAt = table.Column<DateTime>(nullable: false),
                MaxWorkspaces = table.Column<int>(nullable: true),
                MaxVcpus = table.Column<double>(nullable: true),
                MaxGpus = table.Column<int>(nullable: true),
                Group = table.Column<string>(nullable: true),
            },
            constraints: table => table.PrimaryKey("PK_users", x => x.Id));

        migrationBuilder.CreateTable(
            name: "api_tokens",
            columns: table => new
            {
                Id = table.Column<string>(nullable: false),
                UserId = table.Column<string>(nullable: false),
                Name = table.Column<string>(nullable: false),
                Hash = table.Column<string>(nullable: false),
                Scopes = table.Column<string>(nullable: false),
                CreatedAt = table.Column<DateTime>(nullable: false),
                ExpiresAt = table.Column<DateTime>(nullable: false),
                LastUsedAt = table.Column<DateTimeOffset>(nullable: true),
            },
            constraints: table => table.PrimaryKey("PK_api_tokens", x => x.Id));

        migrationBuilder.CreateIndex(name: "IX_users_Name", table: "users", column: "Name", unique: true);
        migrationBuilder.CreateIndex(name: "IX_api_tokens_Hash", table: "api_tokens", column: "Hash", unique: true);
        migrationBuilder.CreateIndex(name: "IX_api_tokens_UserId", table: "api_tokens", column: "UserId");
    }

    protected override void Down(MigrationBuilder migrationBuilder)
    {
        migrationBuilder.DropTable(name: "api_tokens");
        migrationBuilder.DropTable(name: "users");
    }
}
