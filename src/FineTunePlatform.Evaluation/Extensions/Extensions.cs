using FineTunePlatform.Contracts.Datasets;
using FineTunePlatform.Contracts.Inference;
using FineTunePlatform.Evaluation.Infrastructure;
using FineTunePlatform.Evaluation.IntegrationEvents;
using FineTunePlatform.Evaluation.JobEvaluations;
using FineTunePlatform.Evaluation.Runs;
using MassTransit;

namespace FineTunePlatform.Evaluation.Extensions;

internal static class Extensions
{
    public static void AddApplicationServices(this IHostApplicationBuilder builder)
    {
        builder.AddNpgsqlDbContext<EvaluationDbContext>("evaluationdb");
        builder.Services.AddMigration<EvaluationDbContext>();

        // Retried: a save can lose a race with the eval being deleted (its runs' foreign key); the retry sees the eval
        // gone and records the evaluation as failed instead of the event going to the error queue.
        builder.AddMessageBus(bus => bus.AddConsumer<StartJobEvaluationConsumer>((_, consumer) =>
            consumer.UseMessageRetry(retry => retry.Intervals(100, 500, 2_000, 5_000))));

        _ = builder.Configuration.GetInternalToken();
        // Runs call as their project and name it on each call (no ambient caller), so no interceptor. A call cut by
        // shutdown or cancellation surfaces as OperationCanceledException, which the executor hands the run back on.
        builder.Services.AddInternalGrpcClient<DatasetService.DatasetServiceClient>("datasets")
            .ConfigureChannel(channel => channel.ThrowOperationCanceledOnCancellation = true);
        builder.Services.AddInternalGrpcClient<InferenceService.InferenceServiceClient>("gateway")
            .ConfigureChannel(channel => channel.ThrowOperationCanceledOnCancellation = true);

        builder.Services.Configure<RunOptions>(builder.Configuration.GetSection("Evaluation:Runs"));
        builder.Services.AddSingleton(TimeProvider.System);
        builder.Services.AddSingleton<RunSignal>();
        builder.Services.AddSingleton<RunItems>();
        builder.Services.AddScoped<RunProcessor>();
        builder.Services.AddHostedService<RunExecutor>();
        builder.Services.AddHostedService<JobEvaluationMonitor>();

        builder.Services.AddGrpc(options => options.Interceptors.Add<NulTextInterceptor>());
    }
}
