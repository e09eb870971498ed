using FineTunePlatform.Evaluation.Infrastructure;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace FineTunePlatform.Evaluation.Runs;

/// <summary>
/// Claims runs and executes them, up to Evaluation:Runs:MaxConcurrentRuns at once per instance. A claim is a
/// conditional update of the row (queued, or in progress with an expired lease), so any number of evaluation
/// instances share the work and a run whose executor died is picked up again after its lease.
/// </summary>
public sealed partial class RunExecutor(
    IServiceScopeFactory scopes,
    RunSignal signal,
    [FromKeyedServices(JobEvaluations.JobEvaluationMonitor.Wake)] RunSignal runFinished,
    IOptions<RunOptions> options,
    TimeProvider time,
    ILogger<RunExecutor> logger) : BackgroundService
{
    private readonly string _owner = $"{Environment.MachineName}:{Environment.ProcessId}:{Guid.NewGuid():N}";

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var running = new List<Task>();
        while (!stoppingToken.IsCancellationRequested)
        {
            running.RemoveAll(task => task.IsCompleted);
            var wake = signal.Next;
            try
            {
                while (running.Count < options.Value.MaxConcurrentRuns && await ClaimAsync(stoppingToken) is { } runId)
                {
                    running.Add(RunClaimedAsync(runId, stoppingToken));
                }
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                LogClaimFailed(logger, ex);
            }
            catch (OperationCanceledException)
            {
                break;
            }

            // A new run here, a run finishing (a slot frees), or the poll (runs queued elsewhere, expired leases).
            await Task.WhenAny(wake, Task.Delay(options.Value.PollInterval, stoppingToken), running.Count > 0 ? Task.WhenAny(running) : Task.Delay(Timeout.Infinite, stoppingToken));
        }

        await Task.WhenAll(running);
    }

    private async Task<string?> ClaimAsync(CancellationToken cancellationToken)
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<EvaluationDbContext>();
        var now = time.GetUtcNow();
        // A run whose executors keep dying with it (its lease lapsing attempt after attempt) ends failed.
        await db.Runs
            .Where(run => run.Status == RunStatus.InProgress && run.LeaseUntil < now && run.Attempts >= options.Value.MaxAttempts)
            .ExecuteUpdateAsync(setters => setters
                .SetProperty(run => run.Status, RunStatus.Failed)
                .SetProperty(run => run.FinishedAt, now)
                .SetProperty(run => run.ErrorCode, "run_interrupted")
                .SetProperty(run => run.ErrorMessage, $"The run stopped unexpectedly {options.Value.MaxAttempts} times; its graded items are kept.")
                .SetProperty(run => run.LeaseOwner, (string?)null)
                .SetProperty(run => run.LeaseUntil, (DateTimeOffset?)null), cancellationToken);
        var candidates = await db.Runs.AsNoTracking()
            .Where(run => run.Status == RunStatus.Queued || (run.Status == RunStatus.InProgress && run.LeaseUntil < now))
            .OrderBy(run => run.CreatedAt).Select(run => run.Id).Take(8).ToListAsync(cancellationToken);
        foreach (var candidate in candidates)
        {
            // Re-checked under the row lock: of two executors racing for a run, one updates it and the other none.
            var claimed = await db.Runs
                .Where(run => run.Id == candidate && (run.Status == RunStatus.Queued || (run.Status == RunStatus.InProgress && run.LeaseUntil < now)))
                .ExecuteUpdateAsync(setters => setters
                    .SetProperty(run => run.Status, RunStatus.InProgress)
                    .SetProperty(run => run.LeaseOwner, _owner)
                    .SetProperty(run => run.LeaseUntil, now + options.Value.Lease)
                    .SetProperty(run => run.Attempts, run => run.Attempts + 1), cancellationToken);
            if (claimed == 1)
            {
                return candidate;
            }
        }

        return null;
    }

    private async Task RunClaimedAsync(string runId, CancellationToken stoppingToken)
    {
        await Task.Yield();
        await using var scope = scopes.CreateAsyncScope();
        var processor = scope.ServiceProvider.GetRequiredService<RunProcessor>();
        try
        {
            await processor.ProcessAsync(runId, _owner, stoppingToken);
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // Shutting down: hand the run back so another instance continues it now rather than after the lease.
            await using var releaseScope = scopes.CreateAsyncScope();
            var db = releaseScope.ServiceProvider.GetRequiredService<EvaluationDbContext>();
            await db.Runs.Where(run => run.Id == runId && run.LeaseOwner == _owner && run.Status == RunStatus.InProgress)
                .ExecuteUpdateAsync(setters => setters
                    .SetProperty(run => run.Status, RunStatus.Queued)
                    .SetProperty(run => run.LeaseOwner, (string?)null)
                    .SetProperty(run => run.Attempts, run => run.Attempts - 1), CancellationToken.None);
        }
        catch (Exception ex)
        {
            LogRunCrashed(logger, ex, runId);
        }
        finally
        {
            // A job's evaluation may be waiting for this run.
            runFinished.Notify();
        }
    }

    [LoggerMessage(LogLevel.Warning, "Could not look for eval runs; trying again shortly")]
    private static partial void LogClaimFailed(ILogger logger, Exception exception);

    [LoggerMessage(LogLevel.Error, "Eval run {RunId} stopped unexpectedly; it is retried when its lease runs out")]
    private static partial void LogRunCrashed(ILogger logger, Exception exception, string runId);
}
