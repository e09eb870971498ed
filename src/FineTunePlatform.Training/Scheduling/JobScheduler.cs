using FineTunePlatform.Contracts.IntegrationEvents;
using FineTunePlatform.Training.Grpc;
using FineTunePlatform.Training.Infrastructure;
using FineTunePlatform.Training.Jobs;
using MassTransit;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace FineTunePlatform.Training.Scheduling;

/// <summary>
/// Starts queued jobs on free worker slots and re-queues attempts whose lease ran out. One pass holds a PostgreSQL
/// advisory lock, so any number of training replicas run it and only one decides at a time.
///
/// Policy, per free slot: among projects whose oldest queued job fits their quota (concurrent jobs, training tokens
/// per day), the highest priority wins, then the project running the fewest jobs, then the project served longest
/// ago (so equal projects take turns), then the oldest job.
/// Within a project jobs start in creation order. A project's oldest job says once why it waits.
/// </summary>
public sealed partial class JobScheduler(
    IServiceScopeFactory scopes,
    SchedulerSignal signal,
    JobEventLog events,
    TimeProvider time,
    IOptions<SchedulerOptions> options,
    ILogger<JobScheduler> logger) : BackgroundService
{
    public const string TrainJobQueue = "train-job";
    private const long AdvisoryLockKey = 0x46_54_50_53; // "FTPS"
    private DateTimeOffset _nextEvaluationCheck;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await RunOnceAsync(stoppingToken);
            }
            catch (Exception ex) when (!stoppingToken.IsCancellationRequested)
            {
                LogPassFailed(logger, ex);
            }

            await signal.WaitAsync(options.Value.Interval, stoppingToken);
        }
    }

    /// <summary>One pass: reconcile leases, then dispatch. Returns the attempts sent to workers.</summary>
    public async Task<IReadOnlyList<TrainJob>> RunOnceAsync(CancellationToken cancellationToken)
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<TrainingDbContext>();
        List<TrainJob> dispatched;
        List<TrainingJobFinished> unanswered;
        await using (var transaction = await db.Database.BeginTransactionAsync(cancellationToken))
        {
            var locked = await db.Database.SqlQuery<bool>($"SELECT pg_try_advisory_xact_lock({AdvisoryLockKey}) AS \"Value\"").SingleAsync(cancellationToken);
            if (!locked)
            {
                return [];
            }

            var now = time.GetUtcNow();
            await ReconcileLeasesAsync(db, now, cancellationToken);
            dispatched = await DispatchAsync(db, now, cancellationToken);
            unanswered = now >= _nextEvaluationCheck ? await AskAgainForEvaluationsAsync(db, now, cancellationToken) : [];
            await db.SaveChangesAsync(cancellationToken);
            await CountJobsAsync(db, now, cancellationToken);
            await transaction.CommitAsync(cancellationToken);
        }

        // After the commit: a lost send leaves the attempt unclaimed, and the reconciler re-queues it.
        if (dispatched.Count > 0)
        {
            var endpoint = await scope.ServiceProvider.GetRequiredService<ISendEndpointProvider>().GetSendEndpoint(new Uri($"queue:{TrainJobQueue}"));
            await Task.WhenAll(dispatched.Select(command => endpoint.Send(command, cancellationToken)));
        }

        if (unanswered.Count > 0)
        {
            var publisher = scope.ServiceProvider.GetRequiredService<IPublishEndpoint>();
            await Task.WhenAll(unanswered.Select(finished => publisher.Publish(finished, cancellationToken)));
        }

        return dispatched;
    }

    /// <summary>
    /// Succeeded jobs still waiting for their evaluation's verdict are announced again every EvaluationResend: the
    /// announcement after the job's commit, or the verdict on its way back, may have been lost (the evaluation
    /// service ignores a job it already evaluates and re-sends a verdict it already reached). Bounded per pass.
    /// </summary>
    private async Task<List<TrainingJobFinished>> AskAgainForEvaluationsAsync(TrainingDbContext db, DateTimeOffset now, CancellationToken cancellationToken)
    {
        // Looked for a few times per resend interval, not on every pass: a pass runs twice a second.
        _nextEvaluationCheck = now + (options.Value.EvaluationResend / 4);
        var before = now - options.Value.EvaluationResend;
        var waiting = await db.Jobs
            .Where(job => job.Status == JobStatus.Succeeded && job.EvalId != null && job.EvaluationVerdict == null && job.EvaluationRequestedAt < before)
            .OrderBy(job => job.EvaluationRequestedAt).Take(20).ToListAsync(cancellationToken);
        foreach (var job in waiting)
        {
            job.AskForEvaluation(now);
        }

        return waiting.Select(job => job.ToFinishedEvent()).ToList();
    }

    private async Task ReconcileLeasesAsync(TrainingDbContext db, DateTimeOffset now, CancellationToken cancellationToken)
    {
        var expired = await db.Jobs.Where(job => job.Status == JobStatus.Running && job.LeaseExpiresAt < now).ToListAsync(cancellationToken);
        foreach (var job in expired)
        {
            var who = job.LeaseOwner is null ? "no worker claimed it" : $"worker {job.LeaseOwner} stopped reporting";
            if (job.Attempt >= options.Value.MaxAttempts)
            {
                job.Fail(now, "internal", $"Training was interrupted {job.Attempt} times ({who} on the last attempt); giving up.", null);
                events.Add(db, job.Id, $"Attempt {job.Attempt} lost: {who}. The job failed after {job.Attempt} attempts.", EventLevel.Error);
                continue;
            }

            job.Requeue();
            events.Add(db, job.Id, $"Attempt {job.Attempt} lost: {who}. The job is queued again and will resume from its last checkpoint.", EventLevel.Warn);
        }
    }

    private async Task<List<TrainJob>> DispatchAsync(TrainingDbContext db, DateTimeOffset now, CancellationToken cancellationToken)
    {
        var queued = await db.Jobs.Where(job => job.Status == JobStatus.Queued).OrderBy(job => job.CreatedAt).ThenBy(job => job.Id).ToListAsync(cancellationToken);
        if (queued.Count == 0)
        {
            return [];
        }

        var settings = options.Value;
        var liveSince = now - settings.WorkerTimeout;
        var liveSlots = await db.Workers.Where(worker => worker.LastSeenAt > liveSince).SumAsync(worker => worker.Slots, cancellationToken);
        var running = await db.Jobs.Where(job => job.Status == JobStatus.Running)
            .GroupBy(job => job.ProjectId).Select(group => new { group.Key, Count = group.Count() })
            .ToDictionaryAsync(group => group.Key, group => group.Count, cancellationToken);
        var free = liveSlots - running.Values.Sum();

        var projectIds = queued.Select(job => job.ProjectId).Distinct().ToList();
        var quotas = await db.Quotas.Where(quota => projectIds.Contains(quota.ProjectId)).ToDictionaryAsync(quota => quota.ProjectId, cancellationToken);
        var startOfDay = new DateTimeOffset(now.UtcDateTime.Date, TimeSpan.Zero);
        var tokensToday = await db.Jobs.Where(job => projectIds.Contains(job.ProjectId) && job.FirstDispatchedAt >= startOfDay)
            .GroupBy(job => job.ProjectId).Select(group => new { group.Key, Tokens = group.Sum(job => job.EstimatedTokens) })
            .ToDictionaryAsync(group => group.Key, group => group.Tokens, cancellationToken);
        // Fair share between projects of equal priority and load: the one served longest ago goes first (round robin).
        var lastServed = await db.Jobs.Where(job => projectIds.Contains(job.ProjectId) && job.AttemptStartedAt != null)
            .GroupBy(job => job.ProjectId).Select(group => new { group.Key, At = group.Max(job => job.AttemptStartedAt) })
            .ToDictionaryAsync(group => group.Key, group => group.At, cancellationToken);
        var waiting = queued.GroupBy(job => job.ProjectId).ToDictionary(group => group.Key, group => new Queue<TrainingJob>(group));

        ProjectQuota QuotaOf(string projectId) => quotas.TryGetValue(projectId, out var quota)
            ? quota
            : new ProjectQuota { ProjectId = projectId, MaxConcurrentJobs = settings.DefaultMaxConcurrentJobs, TrainingTokensPerDay = settings.DefaultTrainingTokensPerDay };

        // Why a project's next job cannot start now, or null when it may.
        string? Blocked(string projectId, TrainingJob next)
        {
            var quota = QuotaOf(projectId);
            var runningNow = running.GetValueOrDefault(projectId);
            if (runningNow >= quota.MaxConcurrentJobs)
            {
                return $"Waiting: project {projectId} is running {runningNow} of its {quota.MaxConcurrentJobs} concurrent jobs.";
            }

            var used = tokensToday.GetValueOrDefault(projectId);
            if (next.FirstDispatchedAt is null && used + next.EstimatedTokens > quota.TrainingTokensPerDay)
            {
                return $"Waiting: project {projectId} has used {used} of its {quota.TrainingTokensPerDay} training tokens today and this job needs {next.EstimatedTokens}.";
            }

            return null;
        }

        var dispatched = new List<TrainJob>();
        while (free > 0)
        {
            var eligible = waiting.Where(pair => pair.Value.Count > 0 && Blocked(pair.Key, pair.Value.Peek()) is null)
                .OrderByDescending(pair => QuotaOf(pair.Key).Priority)
                .ThenBy(pair => running.GetValueOrDefault(pair.Key))
                .ThenBy(pair => lastServed.GetValueOrDefault(pair.Key) ?? DateTimeOffset.MinValue)
                .ThenBy(pair => pair.Value.Peek().CreatedAt)
                .Select(pair => pair.Key)
                .FirstOrDefault();
            if (eligible is null)
            {
                break;
            }

            var job = waiting[eligible].Dequeue();
            var firstDispatch = job.FirstDispatchedAt is null;
            job.Dispatch(now, now + settings.ClaimTimeout);
            running[eligible] = running.GetValueOrDefault(eligible) + 1;
            if (firstDispatch)
            {
                tokensToday[eligible] = tokensToday.GetValueOrDefault(eligible) + job.EstimatedTokens;
                PlatformMetrics.JobQueueWait.Record((now - job.CreatedAt).TotalSeconds, new KeyValuePair<string, object?>("project", job.ProjectId));
            }

            free--;
            lastServed[eligible] = now;
            events.Add(db, job.Id, job.Attempt == 1 ? "Fine-tuning job started" : $"Fine-tuning job resumed (attempt {job.Attempt})");
            dispatched.Add(new TrainJob(job.Id, job.Attempt));
        }

        foreach (var (projectId, jobs) in waiting)
        {
            if (jobs.Count == 0)
            {
                continue;
            }

            var next = jobs.Peek();
            var reason = Blocked(projectId, next)
                ?? (liveSlots == 0
                    ? "Waiting: no trainer worker is running; the job starts when one joins."
                    : $"Waiting for a free trainer worker: all {liveSlots} slots are busy.");
            if (next.Wait(reason))
            {
                events.Add(db, next.Id, reason);
            }
        }

        return dispatched;
    }

    /// <summary>Queued and running jobs per project for the finetuneplatform.jobs gauge, as this pass leaves them.</summary>
    private static async Task CountJobsAsync(TrainingDbContext db, DateTimeOffset now, CancellationToken cancellationToken)
    {
        var counts = await db.Jobs.Where(job => job.Status == JobStatus.Queued || job.Status == JobStatus.Running)
            .GroupBy(job => new { job.ProjectId, job.Status }).Select(group => new { group.Key.ProjectId, group.Key.Status, Count = group.Count() })
            .ToListAsync(cancellationToken);
        PlatformMetrics.SetJobCounts(counts.Select(count => (count.ProjectId, count.Status, count.Count)), now);
    }

    [LoggerMessage(LogLevel.Error, "A scheduling pass failed; the next pass retries")]
    private static partial void LogPassFailed(ILogger logger, Exception exception);
}
