using FineTunePlatform.Datasets.Infrastructure;
using FineTunePlatform.ServiceDefaults.Storage;
using Microsoft.EntityFrameworkCore;

namespace FineTunePlatform.Datasets.Files;

/// <summary>
/// Deletes what a crashed upload left behind (files and parts never completed) and the parts of expired upload
/// sessions. Uploads clean up after themselves on every handled failure; this covers a process that died mid-stream.
/// </summary>
public sealed partial class AbandonedContentSweeper(IServiceProvider services, TimeProvider time, ILogger<AbandonedContentSweeper> logger) : BackgroundService
{
    private static readonly TimeSpan Interval = TimeSpan.FromMinutes(5);
    private static readonly TimeSpan Grace = TimeSpan.FromHours(2);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(Interval, time);
        do
        {
            try
            {
                await SweepAsync(stoppingToken);
            }
            catch (Exception ex) when (!stoppingToken.IsCancellationRequested)
            {
                LogSweepFailed(logger, ex);
            }
        }
        while (await timer.WaitForNextTickAsync(stoppingToken));
    }

    public async Task SweepAsync(CancellationToken cancellationToken)
    {
        await using var scope = services.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<DatasetsDbContext>();
        var chunks = scope.ServiceProvider.GetRequiredService<ChunkStore>();
        var cutoff = time.GetUtcNow() - Grace;
        var now = time.GetUtcNow();

        var abandonedFiles = await db.Files.Where(file => file.CompletedAt == null && file.CreatedAt < cutoff).Select(file => file.Id).ToListAsync(cancellationToken);
        var abandonedParts = await db.UploadParts
            .Where(part => (part.CompletedAt == null && part.CreatedAt < cutoff)
                || db.UploadSessions.Any(upload => upload.Id == part.UploadId && upload.Status == UploadStatuses.Pending && upload.ExpiresAt < now))
            .Select(part => part.Id).ToListAsync(cancellationToken);
        foreach (var ownerId in abandonedFiles.Concat(abandonedParts))
        {
            await chunks.DeleteAsync(ownerId, cancellationToken);
        }

        await db.Files.Where(file => abandonedFiles.Contains(file.Id)).ExecuteDeleteAsync(cancellationToken);
        await db.UploadParts.Where(part => abandonedParts.Contains(part.Id)).ExecuteDeleteAsync(cancellationToken);
    }

    [LoggerMessage(LogLevel.Warning, "Sweeping abandoned upload content failed; retrying at the next interval")]
    private static partial void LogSweepFailed(ILogger logger, Exception exception);
}
