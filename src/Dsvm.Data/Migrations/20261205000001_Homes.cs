using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Migrations;

namespace Dsvm.Data.Migrations;

/// <summary>
/// Identity (issue 9): workspaces record their owner's ID and their home's ID, and homes get their own table, owned by
/// a user ID. Records made before have empty IDs; <c>WorkspaceManager.AdoptLegacyRecordsAsync</c> fills them at start
/// (it needs random IDs and the hub's users, which SQL here cannot know), keeping each old volume as its home's object.
/// </summary>
[DbContext(typeof(DsvmDbContext))]
[Migration("20261205000001_Homes")]
public sealed class Homes : Migration
{
    protected override void Up(MigrationBuilder migrationBuilder)
    {
        migrationBuilder.AddColumn<string>(name: "OwnerId", table: "workspaces", nullable: false, defaultValue: "");
        migrationBuilder.AddColumn<string>(name: "HomeId", table: "workspaces", nullable: false, defaultValue: "");
        migrationBuilder.CreateTable(
            name: "homes",
            columns: table => new
            {
                Id = table.Column<string>(nullable: false),
                OwnerId = table.Column<string>(nullable: false),
                Owner = table.Column<string>(nullable: false),
                Name = table.Column<string>(nullable: false),
                Backend = table.Column<string>(nullable: false),
                Volume = table.Column<string>(nullable: false),
                CreatedAt = table.Column<DateTime>(nullable: false),
                OrphanedAt = table.Column<DateTime>(nullable: true),
            },
            constraints: table => table.PrimaryKey("PK_homes", x => x.Id));
        migrationBuilder.CreateIndex(name: "IX_homes_OwnerId_Name", table: "homes", columns: ["OwnerId", "Name"]);
    }

    protected override void Down(MigrationBuilder migrationBuilder)
    {
        migrationBuilder.DropTable(name: "homes");
        migrationBuilder.DropColumn(name: "HomeId", table: "workspaces");
        migrationBuilder.DropColumn(name: "OwnerId", table: "workspaces");
    }
}
