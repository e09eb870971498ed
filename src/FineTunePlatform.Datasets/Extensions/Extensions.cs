using FineTunePlatform.Datasets.Files;
using FineTunePlatform.Datasets.Infrastructure;
using FineTunePlatform.ServiceDefaults.Storage;
using FineTunePlatform.Datasets.Validation;

namespace FineTunePlatform.Datasets.Extensions;

internal static class Extensions
{
    public static void AddApplicationServices(this IHostApplicationBuilder builder)
    {
        builder.AddServiceDatabase<DatasetsDbContext>("datasetsdb");
        builder.Services.AddMigration<DatasetsDbContext>();

        builder.AddMessageBus();

        builder.Services.Configure<FileLimits>(builder.Configuration.GetSection("Datasets:Limits"));
        builder.Services.Configure<ValidationOptions>(builder.Configuration.GetSection("Datasets:Validation"));
        builder.Services.AddSingleton(TimeProvider.System);
        builder.Services.AddSingleton<ChunkStore>();
        builder.Services.AddScoped<FileIngestor>();
        builder.Services.AddScoped<UploadSessions>();
        builder.Services.AddHostedService<AbandonedContentSweeper>();

        builder.Services.AddInternalGrpc(options =>
        {
            // Content travels in chunks; a message is at most one stored chunk plus framing.
            options.MaxReceiveMessageSize = 4 * 1024 * 1024;
        });
    }
}
