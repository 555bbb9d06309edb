using Dsvm.Data;
using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Migrations;

namespace Dsvm.Hub.Data.Migrations;

/// <summary>
/// OpenID Connect: a user may be linked to one identity (issuer + subject). Both columns are null for local users;
/// the unique index allows any number of those (NULLs are distinct in SQLite and PostgreSQL).
/// </summary>
[DbContext(typeof(HubDbContext))]
[Migration("20261201000000_ExternalLogins")]
public sealed class ExternalLogins : Migration
{
    protected override void Up(MigrationBuilder migrationBuilder)
    {
        migrationBuilder.AddColumn<string>(name: "ExternalIssuer", table: "users", nullable: true);
        migrationBuilder.AddColumn<string>(name: "ExternalSubject", table: "users", nullable: true);
        migrationBuilder.CreateIndex(name: "IX_users_ExternalIssuer_ExternalSubject", table: "users", columns: ["ExternalIssuer", "ExternalSubject"], unique: true);
    }

    protected override void Down(MigrationBuilder migrationBuilder)
    {
        migrationBuilder.DropIndex(name: "IX_users_ExternalIssuer_ExternalSubject", table: "users");
        migrationBuilder.DropColumn(name: "ExternalSubject", table: "users");
        migrationBuilder.DropColumn(name: "ExternalIssuer", table: "users");
    }
}
