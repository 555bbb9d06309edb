using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Migrations;

namespace Dsvm.Hub.Data.Migrations;

/// <summary>
/// Server-side browser sessions: a session cookie is valid only while its record exists, so logout, a password
/// change and deleting the user end it. Cookies issued before this migration name no session and are refused
/// (their users log in once more).
/// </summary>
[DbContext(typeof(HubDbContext))]
[Migration("20261205000000_Sessions")]
public sealed class Sessions : Migration
{
    protected override void Up(MigrationBuilder migrationBuilder)
    {
        migrationBuilder.CreateTable(
            name: "sessions",
            columns: table => new
            {
                Id = table.Column<string>(nullable: false),
                UserId = table.Column<string>(nullable: false),
                CreatedAt = table.Column<DateTime>(nullable: false),
                ExpiresAt = table.Column<DateTime>(nullable: false),
            },
            constraints: table => table.PrimaryKey("PK_sessions", x => x.Id));
        migrationBuilder.CreateIndex(name: "IX_sessions_UserId", table: "sessions", column: "UserId");
    }

    protected override void Down(MigrationBuilder migrationBuilder) => migrationBuilder.DropTable(name: "sessions");
}
