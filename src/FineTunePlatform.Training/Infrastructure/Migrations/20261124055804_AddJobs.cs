using System;
using Microsoft.EntityFrameworkCore.Migrations;
using Npgsql.EntityFrameworkCore.PostgreSQL.Metadata;

#nullable disable

namespace FineTunePlatform.Training.Infrastructure.Migrations
{
    /// <inheritdoc />
    public partial class AddJobs : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.CreateTable(
                name: "content_chunks",
                columns: table => new
                {
                    owner_id = table.Column<string>(type: "character varying(64)", maxLength: 64, nullable: false),
                    chunk_index = table.Column<int>(type: "integer", nullable: false),
                    data = table.Column<byte[]>(type: "bytea", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_content_chunks", x => new { x.owner_id, x.chunk_index });
                });

            migrationBuilder.CreateTable(
                name: "jobs",
                columns: table => new
                {
                    Id = table.Column<string>(type: "character varying(64)", maxLength: 64, nullable: false),
                    ProjectId = table.Column<string>(type: "character varying(64)", maxLength: 64, nullable: false),
                    Model = table.Column<string>(type: "character varying(256)", maxLength: 256, nullable: false),
                    RootModel = table.Column<string>(type: "character varying(64)", maxLength: 64, nullable: false),
                    TrainingFile = table.Column<string>(type: "character varying(64)", maxLength: 64, nullable: false),
                    ValidationFile = table.Column<string>(type: "character varying(64)", maxLength: 64, nullable: true),
                    Suffix = table.Column<string>(type: "character varying(64)", maxLength: 64, nullable: true),
                    Seed = table.Column<int>(type: "integer", nullable: false),
                    Metadata = table.Column<string>(type: "jsonb", nullable: false),
                    Method = table.Column<string>(type: "character varying(16)", maxLength: 16, nullable: false),
                    Epochs = table.Column<int>(type: "integer", nullable: false),
                    BatchSize = table.Column<int>(type: "integer", nullable: false),
                    LearningRateMultiplier = table.Column<double>(type: "double precision", nullable: false),
                    Beta = table.Column<double>(type: "double precision", nullable: true),
                    EstimatedTokens = table.Column<long>(type: "bigint", nullable: false),
                    Status = table.Column<string>(type: "character varying(24)", maxLength: 24, nullable: false),
                    CreatedAt = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: false),
                    FirstDispatchedAt = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: true),
                    FinishedAt = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: true),
                    EstimatedFinish = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: true),
                    FineTunedModel = table.Column<string>(type: "character varying(256)", maxLength: 256, nullable: true),
                    TrainedTokens = table.Column<long>(type: "bigint", nullable: true),
                    ResultFile = table.Column<string>(type: "character varying(64)", maxLength: 64, nullable: true),
                    ErrorCode = table.Column<string>(type: "character varying(64)", maxLength: 64, nullable: true),
                    ErrorMessage = table.Column<string>(type: "text", nullable: true),
                    ErrorParam = table.Column<string>(type: "character varying(64)", maxLength: 64, nullable: true),
                    Attempt = table.Column<int>(type: "integer", nullable: false),
                    LeaseOwner = table.Column<string>(type: "character varying(128)", maxLength: 128, nullable: true),
                    LeaseExpiresAt = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: true),
                    AttemptStartedAt = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: true),
                    Step = table.Column<int>(type: "integer", nullable: false),
                    TotalSteps = table.Column<int>(type: "integer", nullable: false),
                    WaitReason = table.Column<string>(type: "text", nullable: true),
                    xmin = table.Column<uint>(type: "xid", rowVersion: true, nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_jobs", x => x.Id);
                });

            migrationBuilder.CreateTable(
                name: "model_permissions",
                columns: table => new
                {
                    Id = table.Column<string>(type: "character varying(64)", maxLength: 64, nullable: false),
                    ModelId = table.Column<string>(type: "character varying(300)", maxLength: 300, nullable: false),
                    OwnerProjectId = table.Column<string>(type: "character varying(64)", maxLength: 64, nullable: false),
                    ProjectId = table.Column<string>(type: "character varying(64)", maxLength: 64, nullable: false),
                    CreatedAt = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_model_permissions", x => x.Id);
                });

            migrationBuilder.CreateTable(
                name: "models",
                columns: table => new
                {
                    Id = table.Column<string>(type: "character varying(300)", maxLength: 300, nullable: false),
                    ProjectId = table.Column<string>(type: "character varying(64)", maxLength: 64, nullable: false),
                    BaseModel = table.Column<string>(type: "character varying(300)", maxLength: 300, nullable: false),
                    JobId = table.Column<string>(type: "character varying(64)", maxLength: 64, nullable: false),
                    CheckpointId = table.Column<string>(type: "character varying(64)", maxLength: 64, nullable: false),
                    CreatedAt = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_models", x => x.Id);
                });

            migrationBuilder.CreateTable(
                name: "project_quotas",
                columns: table => new
                {
                    ProjectId = table.Column<string>(type: "character varying(64)", maxLength: 64, nullable: false),
                    Priority = table.Column<int>(type: "integer", nullable: false),
                    MaxConcurrentJobs = table.Column<int>(type: "integer", nullable: false),
                    TrainingTokensPerDay = table.Column<long>(type: "bigint", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_project_quotas", x => x.ProjectId);
                });

            migrationBuilder.CreateTable(
                name: "workers",
                columns: table => new
                {
                    WorkerId = table.Column<string>(type: "character varying(128)", maxLength: 128, nullable: false),
                    Slots = table.Column<int>(type: "integer", nullable: false),
                    LastSeenAt = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_workers", x => x.WorkerId);
                });

            migrationBuilder.CreateTable(
                name: "checkpoints",
                columns: table => new
                {
                    Id = table.Column<string>(type: "character varying(64)", maxLength: 64, nullable: false),
                    JobId = table.Column<string>(type: "character varying(64)", maxLength: 64, nullable: false),
                    ProjectId = table.Column<string>(type: "character varying(64)", maxLength: 64, nullable: false),
                    ModelId = table.Column<string>(type: "character varying(300)", maxLength: 300, nullable: false),
                    Step = table.Column<int>(type: "integer", nullable: false),
                    Epoch = table.Column<int>(type: "integer", nullable: false),
                    CreatedAt = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: false),
                    Metrics = table.Column<string>(type: "jsonb", nullable: false),
                    Bytes = table.Column<long>(type: "bigint", nullable: false),
                    Sha256 = table.Column<string>(type: "character varying(64)", maxLength: 64, nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_checkpoints", x => x.Id);
                    table.ForeignKey(
                        name: "FK_checkpoints_jobs_JobId",
                        column: x => x.JobId,
                        principalTable: "jobs",
                        principalColumn: "Id",
                        onDelete: ReferentialAction.Cascade);
                });

            migrationBuilder.CreateTable(
                name: "job_events",
                columns: table => new
                {
                    Sequence = table.Column<long>(type: "bigint", nullable: false)
                        .Annotation("Npgsql:ValueGenerationStrategy", NpgsqlValueGenerationStrategy.IdentityAlwaysColumn),
                    Id = table.Column<string>(type: "character varying(64)", maxLength: 64, nullable: false),
                    JobId = table.Column<string>(type: "character varying(64)", maxLength: 64, nullable: false),
                    CreatedAt = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: false),
                    Level = table.Column<string>(type: "character varying(8)", maxLength: 8, nullable: false),
                    Message = table.Column<string>(type: "text", nullable: false),
                    Type = table.Column<string>(type: "character varying(16)", maxLength: 16, nullable: false),
                    Data = table.Column<string>(type: "jsonb", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_job_events", x => x.Sequence);
                    table.ForeignKey(
                        name: "FK_job_events_jobs_JobId",
                        column: x => x.JobId,
                        principalTable: "jobs",
                        principalColumn: "Id",
                        onDelete: ReferentialAction.Cascade);
                });

            migrationBuilder.CreateIndex(
                name: "IX_checkpoints_JobId_Step",
                table: "checkpoints",
                columns: new[] { "JobId", "Step" },
                unique: true);

            migrationBuilder.CreateIndex(
                name: "IX_checkpoints_ModelId",
                table: "checkpoints",
                column: "ModelId",
                unique: true);

            migrationBuilder.CreateIndex(
                name: "IX_job_events_Id",
                table: "job_events",
                column: "Id",
                unique: true);

            migrationBuilder.CreateIndex(
                name: "IX_job_events_JobId_Sequence",
                table: "job_events",
                columns: new[] { "JobId", "Sequence" });

            migrationBuilder.CreateIndex(
                name: "IX_jobs_ProjectId_CreatedAt",
                table: "jobs",
                columns: new[] { "ProjectId", "CreatedAt" });

            migrationBuilder.CreateIndex(
                name: "IX_jobs_Status",
                table: "jobs",
                column: "Status");

            migrationBuilder.CreateIndex(
                name: "IX_model_permissions_ModelId_ProjectId",
                table: "model_permissions",
                columns: new[] { "ModelId", "ProjectId" },
                unique: true);

            migrationBuilder.CreateIndex(
                name: "IX_model_permissions_ProjectId",
                table: "model_permissions",
                column: "ProjectId");

            migrationBuilder.CreateIndex(
                name: "IX_models_ProjectId",
                table: "models",
                column: "ProjectId");

            // Every committed event NOTIFYs its job id on `job_events`, so watchers on any replica wake at once
            // (JobEventHub), whatever code path wrote the event.
            migrationBuilder.Sql("""
                CREATE FUNCTION notify_job_event() RETURNS trigger AS $$
                BEGIN
                  PERFORM pg_notify('job_events', NEW."JobId");
                  RETURN NEW;
                END;
                $$ LANGUAGE plpgsql;
                CREATE TRIGGER job_events_notify AFTER INSERT ON job_events
                  FOR EACH ROW EXECUTE FUNCTION notify_job_event();
                """);
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.Sql("""
                DROP TRIGGER IF EXISTS job_events_notify ON job_events;
                DROP FUNCTION IF EXISTS notify_job_event();
                """);

            migrationBuilder.DropTable(
                name: "checkpoints");

            migrationBuilder.DropTable(
                name: "content_chunks");

            migrationBuilder.DropTable(
                name: "job_events");

            migrationBuilder.DropTable(
                name: "model_permissions");

            migrationBuilder.DropTable(
                name: "models");

            migrationBuilder.DropTable(
                name: "project_quotas");

            migrationBuilder.DropTable(
                name: "workers");

            migrationBuilder.DropTable(
                name: "jobs");
        }
    }
}
