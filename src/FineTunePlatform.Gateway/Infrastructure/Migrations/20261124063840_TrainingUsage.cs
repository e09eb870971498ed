using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace FineTunePlatform.Gateway.Infrastructure.Migrations
{
    /// <inheritdoc />
    public partial class TrainingUsage : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.AddColumn<long>(
                name: "TrainingTokens",
                table: "usage_daily",
                type: "bigint",
                nullable: false,
                defaultValue: 0L);
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropColumn(
                name: "TrainingTokens",
                table: "usage_daily");
        }
    }
}
