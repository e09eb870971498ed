using System;
using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace FineTunePlatform.Training.Infrastructure.Migrations
{
    /// <inheritdoc />
    public partial class AddEvaluationGate : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.AddColumn<bool>(
                name: "RequireEvaluation",
                table: "project_quotas",
                type: "boolean",
                nullable: false,
                defaultValue: false);

            migrationBuilder.AddColumn<string>(
                name: "Status",
                table: "models",
                type: "character varying(24)",
                maxLength: 24,
                nullable: false,
                defaultValue: "published");

            migrationBuilder.AddColumn<string>(
                name: "EvalId",
                table: "jobs",
                type: "character varying(64)",
                maxLength: 64,
                nullable: true);

            migrationBuilder.AddColumn<string>(
                name: "EvaluationDataSource",
                table: "jobs",
                type: "text",
                nullable: true);

            migrationBuilder.AddColumn<bool>(
                name: "EvaluationGated",
                table: "jobs",
                type: "boolean",
                nullable: false,
                defaultValue: false);

            migrationBuilder.AddColumn<double>(
                name: "EvaluationMinImprovement",
                table: "jobs",
                type: "double precision",
                nullable: false,
                defaultValue: 0.0);

            migrationBuilder.AddColumn<DateTimeOffset>(
                name: "EvaluationRequestedAt",
                table: "jobs",
                type: "timestamp with time zone",
                nullable: true);

            migrationBuilder.AddColumn<string>(
                name: "EvaluationVerdict",
                table: "jobs",
                type: "character varying(16)",
                maxLength: 16,
                nullable: true);

            migrationBuilder.CreateIndex(
                name: "IX_jobs_EvaluationRequestedAt",
                table: "jobs",
                column: "EvaluationRequestedAt",
                filter: "\"EvaluationVerdict\" IS NULL AND \"EvalId\" IS NOT NULL");
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropIndex(
                name: "IX_jobs_EvaluationRequestedAt",
                table: "jobs");

            migrationBuilder.DropColumn(
                name: "RequireEvaluation",
                table: "project_quotas");

            migrationBuilder.DropColumn(
                name: "Status",
                table: "models");

            migrationBuilder.DropColumn(
                name: "EvalId",
                table: "jobs");

            migrationBuilder.DropColumn(
                name: "EvaluationDataSource",
                table: "jobs");

            migrationBuilder.DropColumn(
                name: "EvaluationGated",
                table: "jobs");

            migrationBuilder.DropColumn(
                name: "EvaluationMinImprovement",
                table: "jobs");

            migrationBuilder.DropColumn(
                name: "EvaluationRequestedAt",
                table: "jobs");

            migrationBuilder.DropColumn(
                name: "EvaluationVerdict",
                table: "jobs");
        }
    }
}
