using FineTunePlatform.Contracts.Datasets;
using FineTunePlatform.ServiceDefaults.Storage;
using FineTunePlatform.Training.Infrastructure;
using FineTunePlatform.Training.IntegrationEvents;
using FineTunePlatform.Training.Jobs;
using FineTunePlatform.Training.Models;
using FineTunePlatform.Training.Scheduling;
using MassTransit;

namespace FineTunePlatform.Training.Extensions;

internal static class Extensions
{
    public static void AddApplicationServices(this IHostApplicationBuilder builder)
    {
        builder.AddNpgsqlDbContext<TrainingDbContext>("trainingdb");
        builder.Services.AddMigration<TrainingDbContext>();

        // Retried: the verdict is recorded once, so a transient failure (a connection lost) is simply tried again.
        builder.AddMessageBus(bus => bus.AddConsumer<FineTunedModelEvaluatedConsumer>((_, consumer) =>
            consumer.UseMessageRetry(retry => retry.Intervals(100, 500, 2_000, 5_000))));

        builder.Services.AddInternalGrpcClient<DatasetService.DatasetServiceClient>("datasets");

        builder.Services.Configure<SchedulerOptions>(builder.Configuration.GetSection("Training:Scheduler"));
        builder.Services.AddSingleton(TimeProvider.System);
        builder.Services.AddSingleton<ChunkStore>();
        builder.Services.AddSingleton<JobEventLog>();
        builder.Services.AddSingleton<SchedulerSignal>();
        builder.Services.AddScoped<ModelCatalog>();
        builder.Services.AddScoped<JobCreator>();
        builder.Services.AddScoped<ResultsFile>();
        builder.Services.AddSingleton<JobEventHub>();
        builder.Services.AddHostedService(serviceProvider => serviceProvider.GetRequiredService<JobEventHub>());
        builder.Services.AddSingleton<JobScheduler>();
        builder.Services.AddHostedService(serviceProvider => serviceProvider.GetRequiredService<JobScheduler>());

        builder.Services.AddGrpc(options =>
        {
            options.Interceptors.Add<NulTextInterceptor>();
            // Checkpoints travel in chunks of about 1 MiB.
            options.MaxReceiveMessageSize = 4 * 1024 * 1024;
        });
    }
}
