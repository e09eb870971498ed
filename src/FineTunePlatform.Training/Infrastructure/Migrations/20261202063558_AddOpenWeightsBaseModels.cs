using System;
using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace FineTunePlatform.Training.Infrastructure.Migrations
{
    /// <inheritdoc />
    public partial class AddOpenWeightsBaseModels : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.AddColumn<string>(
                name: "Lora",
                table: "jobs",
                type: "jsonb",
                nullable: true);

            migrationBuilder.CreateTable(
                name: "base_models",
                columns: table => new
                {
                    Id = table.Column<string>(type: "character varying(64)", maxLength: 64, nullable: false),
                    Architecture = table.Column<string>(type: "character varying(64)", maxLength: 64, nullable: false),
                    Parameters = table.Column<long>(type: "bigint", nullable: false),
                    ContextLength = table.Column<int>(type: "integer", nullable: false),
                    WeightBytes = table.Column<long>(type: "bigint", nullable: false),
                    FilesSha256 = table.Column<string>(type: "character varying(64)", maxLength: 64, nullable: false),
                    CreatedAt = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_base_models", x => x.Id);
                });

            migrationBuilder.CreateTable(
                name: "stored_blobs",
                columns: table => new
                {
                    Sha256 = table.Column<string>(type: "character varying(64)", maxLength: 64, nullable: false),
                    Bytes = table.Column<long>(type: "bigint", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_stored_blobs", x => x.Sha256);
                });

            migrationBuilder.CreateTable(
                name: "base_model_files",
                columns: table => new
                {
                    ModelId = table.Column<string>(type: "character varying(64)", maxLength: 64, nullable: false),
                    Name = table.Column<string>(type: "character varying(128)", maxLength: 128, nullable: false),
                    Bytes = table.Column<long>(type: "bigint", nullable: false),
                    Sha256 = table.Column<string>(type: "character varying(64)", maxLength: 64, nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_base_model_files", x => new { x.ModelId, x.Name });
                    table.ForeignKey(
                        name: "FK_base_model_files_base_models_ModelId",
                        column: x => x.ModelId,
                        principalTable: "base_models",
                        principalColumn: "Id",
                        onDelete: ReferentialAction.Cascade);
                });

            migrationBuilder.CreateIndex(
                name: "IX_base_model_files_Sha256",
                table: "base_model_files",
                column: "Sha256");
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropTable(
                name: "base_model_files");

            migrationBuilder.DropTable(
                name: "stored_blobs");

            migrationBuilder.DropTable(
                name: "base_models");

            migrationBuilder.DropColumn(
                name: "Lora",
                table: "jobs");
        }
    }
}
