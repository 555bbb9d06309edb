using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Migrations;

namespace Dsvm.Data.Migrations;

/// <summary>
/// The record version that every write compares (optimistic concurrency). Hand-written and provider-neutral like
/// <see cref="Initial"/>; rows that exist already start at version 1.
/// </summary>
[DbContext(typeof(DsvmDbContext))]
[Migration(DatabaseMigrations.WorkspaceVersionMigration)]
public sealed class WorkspaceVersion : Migration
{
    protected override void Up(MigrationBuilder migrationBuilder) =>
        migrationBuilder.AddColumn<long>(name: "Version", table: "workspaces", nullable: false, defaultValue: 1L);

    protected override void Down(MigrationBuilder migrationBuilder) =>
        migrationBuilder.DropColumn(name: "Version", table: "workspaces");
}
