using FineTunePlatform.Contracts.Datasets;
using FineTunePlatform.Contracts.Inference;
using FineTunePlatform.Contracts.StoredCompletions;
using FineTunePlatform.Contracts.Training;
using FineTunePlatform.Evaluation.Graders;
using FineTunePlatform.Evaluation.Infrastructure;
using FineTunePlatform.Evaluation.IntegrationEvents;
using FineTunePlatform.Evaluation.JobEvaluations;
using FineTunePlatform.Evaluation.Runs;

namespace FineTunePlatform.Evaluation.Extensions;

internal static class Extensions
{
    public static void AddApplicationServices(this IHostApplicationBuilder builder)
    {
        builder.AddServiceDatabase<EvaluationDbContext>("evaluationdb");
        builder.Services.AddMigration<EvaluationDbContext>();

        // No retry filter: a failed start is asked for again by training (it re-announces a job while no verdict has
        // come back), and a consumer-level retry filter measurably slowed every service sharing the process.
        builder.AddMessageBus(bus => bus.AddConsumer<StartJobEvaluationConsumer>());

        // Runs call as their project and name it on each call (no ambient caller), so no interceptor. A call cut by
        // shutdown or cancellation surfaces as OperationCanceledException, which the executor hands the run back on.
        builder.Services.AddInternalGrpcClient<DatasetService.DatasetServiceClient>("datasets")
            .ConfigureChannel(channel => channel.ThrowOperationCanceledOnCancellation = true);
        builder.Services.AddInternalGrpcClient<InferenceService.InferenceServiceClient>("gateway")
            .ConfigureChannel(channel => channel.ThrowOperationCanceledOnCancellation = true);
        // The `stored_completions` data source: the gateway owns stored completions.
        builder.Services.AddInternalGrpcClient<StoredCompletionService.StoredCompletionServiceClient>("gateway")
            .ConfigureChannel(channel => channel.ThrowOperationCanceledOnCancellation = true);
        // TrainingJobFinished is a nudge: the job's evaluation request is read from training.
        builder.Services.AddInternalGrpcClient<TrainingService.TrainingServiceClient>("training");

        builder.Services.Configure<RunOptions>(builder.Configuration.GetSection("Evaluation:Runs"));
        builder.Services.AddSingleton(TimeProvider.System);
        builder.Services.AddSingleton<RunSignal>();
        builder.Services.AddKeyedSingleton<RunSignal>(JobEvaluationMonitor.Wake);
        builder.Services.AddSingleton<RunItems>();
        builder.Services.AddScoped<RunProcessor>();
        builder.Services.AddSingleton<GraderRunner>();
        builder.Services.AddHostedService<RunExecutor>();
        builder.Services.AddHostedService<JobEvaluationMonitor>();

        builder.Services.AddInternalGrpc();
    }
}
