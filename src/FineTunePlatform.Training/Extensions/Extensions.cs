using FineTunePlatform.Contracts.Datasets;
using FineTunePlatform.Contracts.Evaluation;
using FineTunePlatform.ServiceDefaults.Messaging;
using FineTunePlatform.ServiceDefaults.Storage;
using FineTunePlatform.Training.Infrastructure;
using FineTunePlatform.Training.IntegrationEvents;
using FineTunePlatform.Training.Jobs;
using FineTunePlatform.Training.Models;
using FineTunePlatform.Training.Scheduling;

namespace FineTunePlatform.Training.Extensions;

internal static class Extensions
{
    public static void AddApplicationServices(this IHostApplicationBuilder builder)
    {
        builder.AddServiceDatabase<TrainingDbContext>("trainingdb");
        builder.Services.AddMigration<TrainingDbContext>();

        // No retry filter: a verdict that fails to record is sent again (the scheduler re-announces the job, the
        // evaluation service re-sends its verdict).
        builder.AddMessageBus(bus => bus.AddConsumer<FineTunedModelEvaluatedConsumer>());

        builder.Services.AddInternalGrpcClient<DatasetService.DatasetServiceClient>("datasets");
        // The promotion gate reads verdicts from their owner; each call names the job's project itself.
        builder.Services.AddInternalGrpcClient<EvaluationService.EvaluationServiceClient>("evaluation");

        builder.Services.Configure<SchedulerOptions>(builder.Configuration.GetSection("Training:Scheduler"));
        builder.Services.AddSingleton(TimeProvider.System);
        builder.Services.AddSingleton<ChunkStore>();
        builder.Services.AddSingleton<JobEventLog>();
        builder.Services.AddSingleton<SchedulerSignal>();
        // TrainingJobFinished (the job's training usage, its evaluation) and ModelAccessChanged leave with the commit
        // that made them true, even when this process dies right after it.
        builder.Services.AddIntegrationEventOutbox<TrainingDbContext>();
        builder.Services.AddScoped<ModelCatalog>();
        builder.Services.AddScoped<BaseModelLibrary>();
        builder.Services.Configure<OpenWeightsTrainingOptions>(builder.Configuration.GetSection("Training:OpenWeights"));
        builder.Services.AddSingleton<ChatFormatters>();
        builder.Services.AddScoped<TrainingFileFits>();
        builder.Services.AddScoped<JobCreator>();
        builder.Services.AddScoped<ResultsFile>();
        builder.Services.AddSingleton<JobEventHub>();
        builder.Services.AddHostedService(serviceProvider => serviceProvider.GetRequiredService<JobEventHub>());
        builder.Services.AddSingleton<JobScheduler>();
        builder.Services.AddHostedService(serviceProvider => serviceProvider.GetRequiredService<JobScheduler>());

        builder.Services.AddInternalGrpc(options =>
        {
            // Checkpoints travel in chunks of about 1 MiB.
            options.MaxReceiveMessageSize = 4 * 1024 * 1024;
        });
    }
}
