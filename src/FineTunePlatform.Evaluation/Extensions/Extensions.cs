using FineTunePlatform.Contracts.Datasets;
using FineTunePlatform.Contracts.Inference;
using FineTunePlatform.Evaluation.Infrastructure;
using FineTunePlatform.Evaluation.Runs;

namespace FineTunePlatform.Evaluation.Extensions;

internal static class Extensions
{
    public static void AddApplicationServices(this IHostApplicationBuilder builder)
    {
        builder.AddNpgsqlDbContext<EvaluationDbContext>("evaluationdb");
        builder.Services.AddMigration<EvaluationDbContext>();

        builder.AddMessageBus();

        _ = builder.Configuration.GetInternalToken();
        // Runs call as their project and name it on each call (no ambient caller), so no interceptor.
        builder.Services.AddInternalGrpcClient<DatasetService.DatasetServiceClient>("datasets");
        builder.Services.AddInternalGrpcClient<InferenceService.InferenceServiceClient>("gateway");

        builder.Services.Configure<RunOptions>(builder.Configuration.GetSection("Evaluation:Runs"));
        builder.Services.AddSingleton(TimeProvider.System);
        builder.Services.AddSingleton<RunSignal>();
        builder.Services.AddSingleton<RunItems>();
        builder.Services.AddScoped<RunProcessor>();
        builder.Services.AddHostedService<RunExecutor>();

        builder.Services.AddGrpc();
    }
}
