using FineTunePlatform.Evaluation.Infrastructure;

namespace FineTunePlatform.Evaluation.Extensions;

internal static class Extensions
{
    public static void AddApplicationServices(this IHostApplicationBuilder builder)
    {
        builder.AddNpgsqlDbContext<EvaluationDbContext>("evaluationdb");
        builder.Services.AddMigration<EvaluationDbContext>();

        builder.AddMessageBus();

        builder.Services.AddGrpc();
    }
}
