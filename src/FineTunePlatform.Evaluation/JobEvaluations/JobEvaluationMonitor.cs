using System.Globalization;
using FineTunePlatform.Contracts.IntegrationEvents;
using FineTunePlatform.Evaluation.Infrastructure;
using FineTunePlatform.Evaluation.Runs;
using MassTransit;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace FineTunePlatform.Evaluation.JobEvaluations;

/// <summary>
/// Settles job evaluations whose two runs have finished (compares them: promote, reject, or failed when a run did
/// not complete) and publishes each verdict until the bus has taken it. The rows are the truth, so a verdict reached
/// while the bus was down is sent on a later pass; instances racing over one row may both publish it, which the
/// training service's consumer absorbs (it records a job's verdict once).
/// </summary>
public sealed partial class JobEvaluationMonitor(
    IServiceScopeFactory scopes,
    [FromKeyedServices(JobEvaluationMonitor.Wake)] RunSignal signal,
    IOptions<RunOptions> options,
    TimeProvider time,
    ILogger<JobEvaluationMonitor> logger) : BackgroundService
{
    /// <summary>The key of the <see cref="RunSignal"/> that wakes the monitor: a run finished here, or a verdict is due again.</summary>
    public const string Wake = "job-evaluations";

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        // Woken by this instance's runs as they finish; the slow poll catches runs that finished on other instances
        // and verdicts the bus refused. (A frequent poll cost measurable CPU on small machines.)
        var poll = options.Value.PollInterval * 30;
        while (!stoppingToken.IsCancellationRequested)
        {
            var wake = signal.Next;
            try
            {
                await using var scope = scopes.CreateAsyncScope();
                await SettleAndPublishAsync(scope.ServiceProvider.GetRequiredService<EvaluationDbContext>(),
                    scope.ServiceProvider.GetRequiredService<IPublishEndpoint>(), stoppingToken);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                break;
            }
            catch (Exception ex)
            {
                LogPassFailed(logger, ex);
            }

            try
            {
                await Task.WhenAny(wake, Task.Delay(poll, time, stoppingToken)).Unwrap();
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                break;
            }
        }
    }

    private async Task SettleAndPublishAsync(EvaluationDbContext db, IPublishEndpoint publisher, CancellationToken cancellationToken)
    {
        var open = await db.JobEvaluations.Where(evaluation => evaluation.PublishedAt == null).OrderBy(evaluation => evaluation.CreatedAt).Take(50).ToListAsync(cancellationToken);
        foreach (var evaluation in open)
        {
            if (evaluation.Verdict is null && !await SettleAsync(db, evaluation, cancellationToken))
            {
                continue;
            }

            await publisher.Publish(new FineTunedModelEvaluated(evaluation.JobId, evaluation.ProjectId, evaluation.TunedModel, evaluation.EvalId,
                evaluation.BaseRunId ?? "", evaluation.TunedRunId ?? "", evaluation.Verdict!, evaluation.Summary ?? "")
            {
                BaselinePassRate = evaluation.BaselinePassRate,
                CandidatePassRate = evaluation.CandidatePassRate,
            }, cancellationToken);
            evaluation.PublishedAt = time.GetUtcNow();
            await db.SaveChangesAsync(cancellationToken);
            LogSettled(logger, evaluation.JobId, evaluation.Verdict!, evaluation.Summary ?? "");
        }
    }

    /// <summary>Reaches the verdict when both runs have finished; false while either is still queued or running.</summary>
    private async Task<bool> SettleAsync(EvaluationDbContext db, JobEvaluation evaluation, CancellationToken cancellationToken)
    {
        var runs = await db.Runs.AsNoTracking().Where(run => run.Id == evaluation.BaseRunId || run.Id == evaluation.TunedRunId).ToListAsync(cancellationToken);
        var baseRun = runs.FirstOrDefault(run => run.Id == evaluation.BaseRunId);
        var tunedRun = runs.FirstOrDefault(run => run.Id == evaluation.TunedRunId);
        if (baseRun is { IsFinished: false } || tunedRun is { IsFinished: false })
        {
            return false;
        }

        var incomplete = new[] { ("base", evaluation.BaseRunId, baseRun), ("tuned", evaluation.TunedRunId, tunedRun) }
            .Where(entry => entry.Item3 is not { Status: RunStatus.Completed })
            .Select(entry => entry.Item3 is null
                ? $"the {entry.Item1} run {entry.Item2} was deleted"
                : $"the {entry.Item1} run {entry.Item3.Id} {entry.Item3.Status}" + (entry.Item3.ErrorMessage is { } message ? $" ({message})" : ""))
            .ToList();
        if (incomplete.Count > 0)
        {
            evaluation.Verdict = EvaluationVerdict.Failed;
            evaluation.Summary = string.Join("; ", incomplete);
        }
        else
        {
            var comparison = RunComparer.Compare(
                await RunComparer.OutcomesAsync(db, baseRun!.Id, cancellationToken),
                await RunComparer.OutcomesAsync(db, tunedRun!.Id, cancellationToken),
                evaluation.MinImprovement);
            evaluation.Verdict = comparison.Promote ? EvaluationVerdict.Promote : EvaluationVerdict.Reject;
            evaluation.BaselinePassRate = comparison.BaselinePassRate;
            evaluation.CandidatePassRate = comparison.CandidatePassRate;
            evaluation.Summary = string.Create(CultureInfo.InvariantCulture,
                $"pass rate {comparison.CandidatePassRate:0.###} for {evaluation.TunedModel} against {comparison.BaselinePassRate:0.###} for {evaluation.BaseModel} "
                + $"over {comparison.ItemsCompared} items ({comparison.Improved} improved, {comparison.Regressed} regressed; needed {comparison.BaselinePassRate + evaluation.MinImprovement:0.###})");
        }

        evaluation.SettledAt = time.GetUtcNow();
        return true;
    }

    [LoggerMessage(LogLevel.Warning, "Could not settle job evaluations; trying again shortly")]
    private static partial void LogPassFailed(ILogger logger, Exception exception);

    [LoggerMessage(LogLevel.Information, "Job {JobId} evaluated: {Verdict} ({Summary})")]
    private static partial void LogSettled(ILogger logger, string jobId, string verdict, string summary);
}
