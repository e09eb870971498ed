using FineTunePlatform.ServiceDefaults.Storage;
using FineTunePlatform.Contracts.Datasets;
using FineTunePlatform.Contracts.Training;
using FineTunePlatform.Training.Worker.Backends;
using FineTunePlatform.Training.Worker.IntegrationEvents;
using FineTunePlatform.Training.Worker.Training;

namespace FineTunePlatform.Training.Worker.Extensions;

internal static class Extensions
{
    /// <summary>Workers hold nothing durable: the bus brings work, the training service holds the truth.</summary>
    public static void AddApplicationServices(this IHostApplicationBuilder builder)
    {
        builder.Services.Configure<WorkerOptions>(builder.Configuration.GetSection("Training:Worker"));
        builder.AddMessageBus(bus => bus.AddConsumer<TrainJobConsumer>(typeof(TrainJobConsumerDefinition)));

        builder.Services.AddInternalGrpcClient<TrainerService.TrainerServiceClient>("training");
        builder.Services.AddInternalGrpcClient<DatasetService.DatasetServiceClient>("datasets");
        // Imported base models' files (the training service stores them).
        builder.Services.AddInternalGrpcClient<TrainingService.TrainingServiceClient>("training");
        builder.Services.AddSingleton<BaseModelDirectories>();

        builder.Services.AddSingleton<ITrainingBackend, LocalBackend>();
        builder.Services.AddSingleton<ITrainingBackend, OpenWeightsBackend>();
        builder.Services.AddScoped<JobRunner>();
        builder.Services.AddHostedService<WorkerPresenceAnnouncer>();

        builder.Services.AddInternalGrpc();
    }
}
