using System;
using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace FineTunePlatform.Training.Infrastructure.Migrations
{
    /// <inheritdoc />
    public partial class AddTrainingFileFits : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.CreateTable(
                name: "training_file_fits",
                columns: table => new
                {
                    FileId = table.Column<string>(type: "character varying(64)", maxLength: 64, nullable: false),
                    BaseFilesSha256 = table.Column<string>(type: "character varying(64)", maxLength: 64, nullable: false),
                    TrainingLength = table.Column<int>(type: "integer", nullable: false),
                    Examples = table.Column<long>(type: "bigint", nullable: false),
                    ExamplesTruncated = table.Column<long>(type: "bigint", nullable: false),
                    ExamplesWithoutLearnedTokens = table.Column<long>(type: "bigint", nullable: false),
                    LinesWithoutLearnedTokens = table.Column<long[]>(type: "bigint[]", nullable: false),
                    TokensPerEpoch = table.Column<long>(type: "bigint", nullable: false),
                    Message = table.Column<string>(type: "text", nullable: false),
                    CreatedAt = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_training_file_fits", x => new { x.FileId, x.BaseFilesSha256, x.TrainingLength });
                });
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropTable(
                name: "training_file_fits");
        }
    }
}
