using FineTunePlatform.Datasets.Infrastructure;

namespace FineTunePlatform.Datasets.Extensions;

internal static class Extensions
{
    public static void AddApplicationServices(this IHostApplicationBuilder builder)
    {
        builder.AddNpgsqlDbContext<DatasetsDbContext>("datasetsdb");
        builder.Services.AddMigration<DatasetsDbContext>();

        builder.AddMessageBus();

        builder.Services.AddGrpc();
    }
}
