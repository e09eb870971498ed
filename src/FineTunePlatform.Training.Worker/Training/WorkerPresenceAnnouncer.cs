using FineTunePlatform.Contracts.Training;
using FineTunePlatform.Training.Worker.Backends;
using Microsoft.Extensions.Options;

namespace FineTunePlatform.Training.Worker.Training;

/// <summary>
/// Tells the training service this worker is alive and how many slots it has; on shutdown, that it has none, so the
/// scheduler stops counting it at once rather than after the worker timeout.
/// </summary>
public sealed partial class WorkerPresenceAnnouncer(
    TrainerService.TrainerServiceClient trainer, IEnumerable<ITrainingBackend> backends, IOptions<WorkerOptions> options, ILogger<WorkerPresenceAnnouncer> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(options.Value.PresenceInterval);
        do
        {
            await AnnounceAsync(options.Value.Slots, stoppingToken);
        }
        while (await timer.WaitForNextTickAsync(stoppingToken));
    }

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        await base.StopAsync(cancellationToken);
        await AnnounceAsync(0, cancellationToken);
    }

    private async Task AnnounceAsync(int slots, CancellationToken cancellationToken)
    {
        try
        {
            var presence = new Contracts.Training.WorkerPresence { WorkerId = options.Value.WorkerId, Slots = slots };
            presence.Backends.AddRange(backends.Select(backend => backend.Name));
            await trainer.RegisterWorkerAsync(presence, deadline: DateTime.UtcNow.AddSeconds(5), cancellationToken: cancellationToken);
        }
        catch (Exception ex) when (!cancellationToken.IsCancellationRequested)
        {
            LogAnnounceFailed(logger, ex);
        }
    }

    [LoggerMessage(LogLevel.Warning, "Could not reach the training service to announce this worker; retrying")]
    private static partial void LogAnnounceFailed(ILogger logger, Exception exception);
}
