using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace FineTunePlatform.AppHost;

/// <summary>
/// Restarts a replica of a resource when it dies (exits with a non-zero code: a crash, an OOM kill, kill -9). DCP,
/// which runs the processes, restarts nothing by itself (microsoft/dcp#32 is open: no restart policy for executables
/// in Aspire 13.6), so a dead service replica or trainer worker would silently halve capacity. While it is down the dashboard and
/// `./run.sh status` show the replica as Exited with its exit code; a replica that exits cleanly (stopped from the
/// dashboard or `aspire resource`) stays stopped. Restarts of one replica are spaced by a growing delay, so a worker
/// that cannot start does not spin.
/// </summary>
internal sealed partial class CrashedReplicaRestarter(
    string resourceName,
    ResourceNotificationService notifications,
    ResourceCommandService commands,
    ILogger<CrashedReplicaRestarter> logger) : BackgroundService
{
    private static readonly TimeSpan FirstDelay = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan LongestDelay = TimeSpan.FromMinutes(1);

    /// <summary>Per replica: the exit already handled (its stop time) and the delay before the next restart.</summary>
    private readonly Dictionary<string, (DateTime? HandledExit, TimeSpan Delay, DateTime RestartedAt)> _replicas = [];

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        try
        {
            await foreach (var update in notifications.WatchAsync(stoppingToken))
            {
                var snapshot = update.Snapshot;
                // DCP reports a project replica whose process was killed as Finished (its `dotnet run` host exited),
                // one that stopped by itself as Exited: either, with a non-zero code, is a crash.
                if (update.Resource.Name != resourceName
                    || (snapshot.State?.Text != KnownResourceStates.Exited && snapshot.State?.Text != KnownResourceStates.Finished)
                    || snapshot.ExitCode is null or 0)
                {
                    continue;
                }

                var replica = _replicas.GetValueOrDefault(update.ResourceId, (null, FirstDelay, DateTime.MinValue));
                if (replica.HandledExit == snapshot.StopTimeStamp)
                {
                    continue;
                }

                // A replica that ran a while before dying starts over at the shortest delay.
                var delay = DateTime.UtcNow - replica.RestartedAt > LongestDelay ? FirstDelay : replica.Delay;
                _replicas[update.ResourceId] = (snapshot.StopTimeStamp, Min(delay * 2, LongestDelay), DateTime.UtcNow + delay);
                LogRestarting(logger, update.ResourceId, snapshot.ExitCode.Value, delay.TotalSeconds);
                _ = RestartAsync(update.ResourceId, delay, stoppingToken);
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }

    private async Task RestartAsync(string resourceId, TimeSpan delay, CancellationToken stoppingToken)
    {
        try
        {
            await Task.Delay(delay, stoppingToken);
            // The start command, as the dashboard offers it for an exited replica (restart is for a running one).
            var result = await commands.ExecuteCommandAsync(resourceId, KnownResourceCommands.StartCommand, stoppingToken);
            if (!result.Success)
            {
                LogRestartFailed(logger, resourceId, result.Message ?? "no reason given");
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }

    private static TimeSpan Min(TimeSpan a, TimeSpan b) => a < b ? a : b;

    [LoggerMessage(LogLevel.Warning, "{Replica} exited with code {ExitCode}; restarting it in {DelaySeconds} s")]
    private static partial void LogRestarting(ILogger logger, string replica, int exitCode, double delaySeconds);

    [LoggerMessage(LogLevel.Error, "Restarting {Replica} failed: {Reason}")]
    private static partial void LogRestartFailed(ILogger logger, string replica, string reason);
}

internal static class CrashedReplicaRestarterExtensions
{
    /// <summary>Restarts each replica of the project by itself when it dies (<see cref="CrashedReplicaRestarter"/>).</summary>
    public static IResourceBuilder<ProjectResource> WithRestartOnCrash(this IResourceBuilder<ProjectResource> project)
    {
        var name = project.Resource.Name;
        project.ApplicationBuilder.Services.AddSingleton<IHostedService>(services => new CrashedReplicaRestarter(
            name,
            services.GetRequiredService<ResourceNotificationService>(),
            services.GetRequiredService<ResourceCommandService>(),
            services.GetRequiredService<ILogger<CrashedReplicaRestarter>>()));
        return project;
    }
}
