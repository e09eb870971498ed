using FineTunePlatform.Training.Infrastructure;

namespace FineTunePlatform.Training.Extensions;

internal static class Extensions
{
    public static void AddApplicationServices(this IHostApplicationBuilder builder)
    {
        builder.AddNpgsqlDbContext<TrainingDbContext>("trainingdb");
        builder.Services.AddMigration<TrainingDbContext>();

        builder.AddMessageBus();

        builder.Services.AddGrpc();
    }
}
