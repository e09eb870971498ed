using System.Collections.Concurrent;
using Npgsql;

namespace FineTunePlatform.Training.Jobs;

/// <summary>
/// Listens on PostgreSQL's `job_events` channel (one connection per replica) and wakes the watchers of the job a
/// notification names, so an event a worker reports through any replica reaches every stream within milliseconds.
/// A watcher that misses a wake-up (reconnect) still polls on a short timeout.
/// </summary>
public sealed partial class JobEventHub(NpgsqlDataSource dataSource, ILogger<JobEventHub> logger) : BackgroundService
{
    private readonly ConcurrentDictionary<string, TaskCompletionSource> _waiters = new();

    /// <summary>Completes at the job's next event. Take it before reading, so nothing slips between read and wait.</summary>
    public Task NextEventAsync(string jobId) =>
        _waiters.GetOrAdd(jobId, _ => new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).Task;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await using var connection = await dataSource.OpenConnectionAsync(stoppingToken);
                connection.Notification += (_, notification) => Wake(notification.Payload);
                await using (var listen = new NpgsqlCommand($"LISTEN {JobEventLog.NotificationChannel}", connection))
                {
                    await listen.ExecuteNonQueryAsync(stoppingToken);
                }

                // Anything that happened while not listening: let every watcher read again.
                WakeAll();
                while (!stoppingToken.IsCancellationRequested)
                {
                    await connection.WaitAsync(stoppingToken);
                }
            }
            catch (Exception ex) when (!stoppingToken.IsCancellationRequested)
            {
                LogListenFailed(logger, ex);
                await Task.Delay(TimeSpan.FromSeconds(1), stoppingToken);
            }
        }
    }

    private void Wake(string jobId)
    {
        if (_waiters.TryRemove(jobId, out var waiter))
        {
            waiter.TrySetResult();
        }
    }

    private void WakeAll()
    {
        foreach (var jobId in _waiters.Keys)
        {
            Wake(jobId);
        }
    }

    [LoggerMessage(LogLevel.Warning, "Listening for job events failed; reconnecting")]
    private static partial void LogListenFailed(ILogger logger, Exception exception);
}
