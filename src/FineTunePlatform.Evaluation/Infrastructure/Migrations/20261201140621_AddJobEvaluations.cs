using System;
using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace FineTunePlatform.Evaluation.Infrastructure.Migrations
{
    /// <inheritdoc />
    public partial class AddJobEvaluations : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.CreateTable(
                name: "job_evaluations",
                columns: table => new
                {
                    JobId = table.Column<string>(type: "character varying(64)", maxLength: 64, nullable: false),
                    ProjectId = table.Column<string>(type: "character varying(64)", maxLength: 64, nullable: false),
                    EvalId = table.Column<string>(type: "character varying(64)", maxLength: 64, nullable: false),
                    BaseModel = table.Column<string>(type: "character varying(300)", maxLength: 300, nullable: false),
                    TunedModel = table.Column<string>(type: "character varying(300)", maxLength: 300, nullable: false),
                    BaseRunId = table.Column<string>(type: "character varying(64)", maxLength: 64, nullable: true),
                    TunedRunId = table.Column<string>(type: "character varying(64)", maxLength: 64, nullable: true),
                    MinImprovement = table.Column<double>(type: "double precision", nullable: false),
                    CreatedAt = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: false),
                    Verdict = table.Column<string>(type: "character varying(16)", maxLength: 16, nullable: true),
                    Summary = table.Column<string>(type: "text", nullable: true),
                    BaselinePassRate = table.Column<double>(type: "double precision", nullable: true),
                    CandidatePassRate = table.Column<double>(type: "double precision", nullable: true),
                    SettledAt = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: true),
                    PublishedAt = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: true)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_job_evaluations", x => x.JobId);
                });

            migrationBuilder.CreateIndex(
                name: "IX_job_evaluations_PublishedAt",
                table: "job_evaluations",
                column: "PublishedAt",
                filter: "\"PublishedAt\" IS NULL");
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropTable(
                name: "job_evaluations");
        }
    }
}
