using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Migrations;

namespace Dsvm.Data.Migrations;

/// <summary>
/// The workspaces table. Hand-written and provider-neutral: no column types are named, so SQLite and PostgreSQL each
/// map the CLR types themselves (the model's DateTimeOffset columns are stored as UTC DateTime).
/// </summary>
[DbContext(typeof(DsvmDbContext))]
[Migration(DatabaseMigrations.InitialMigration)]
public sealed class Initial : Migration
{
    protected override void Up(MigrationBuilder migrationBuilder)
    {
        migrationBuilder.CreateTable(
            name: "workspaces",
            columns: table => new
            {
                Id = table.Column<string>(nullable: false),
                Name = table.Column<string>(nullable: false),
                Owner = table.Column<string>(nullable: false),
                Environment = table.Column<string>(nullable: false),
                Image = table.Column<string>(nullable: false),
                Size = table.Column<string>(nullable: false),
                Backend = table.Column<string>(nullable: false),
                HomeVolume = table.Column<string>(nullable: false),
                Token = table.Column<string>(nullable: false),
                State = table.Column<string>(nullable: false),
                ContainerId = table.Column<string>(nullable: true),
                Endpoint = table.Column<string>(nullable: true),
                GpuEnabled = table.Column<bool>(nullable: false),
                CpuFallback = table.Column<bool>(nullable: false),
                LastError = table.Column<string>(nullable: true),
                CreatedAt = table.Column<DateTime>(nullable: false),
                StartedAt = table.Column<DateTimeOffset>(nullable: true),
                UpdatedAt = table.Column<DateTime>(nullable: false),
                BackendState = table.Column<string>(nullable: false),
            },
            constraints: table => table.PrimaryKey("PK_workspaces", x => x.Id));

        migrationBuilder.CreateIndex(
            name: "IX_workspaces_Owner_Name",
            table: "workspaces",
            columns: ["Owner", "Name"],
            unique: true);
    }

    protected override void Down(MigrationBuilder migrationBuilder) => migrationBuilder.DropTable(name: "workspaces");
}
