using FineTunePlatform.Contracts.IntegrationEvents;
using FineTunePlatform.Training.Infrastructure;
using FineTunePlatform.Training.Jobs;
using FineTunePlatform.Training.Models;
using MassTransit;
using Microsoft.EntityFrameworkCore;

namespace FineTunePlatform.Training.IntegrationEvents;

/// <summary>
/// Records a job's evaluation verdict once (the job row keeps it; a redelivery finds it set and does nothing), tells
/// the job's events, and moves a model held for it to published or rejected in the same transaction.
/// </summary>
public sealed class FineTunedModelEvaluatedConsumer(TrainingDbContext db, JobEventLog events) : IConsumer<FineTunedModelEvaluated>
{
    public async Task Consume(ConsumeContext<FineTunedModelEvaluated> context)
    {
        var evaluated = context.Message;
        var job = await db.Jobs.FirstOrDefaultAsync(job => job.Id == evaluated.JobId && job.ProjectId == evaluated.ProjectId, context.CancellationToken);
        if (job is null || job.EvaluationVerdict is not null || job.EvalId != evaluated.EvalId)
        {
            return;
        }

        job.EvaluationVerdict = evaluated.Verdict;
        var model = await db.Models.FirstOrDefaultAsync(model => model.Id == evaluated.FineTunedModel && model.JobId == job.Id, context.CancellationToken);
        string outcome;
        if (model is { Status: ModelStatus.PendingEvaluation })
        {
            model.Status = evaluated.Verdict == EvaluationVerdict.Promote ? ModelStatus.Published : ModelStatus.Rejected;
            outcome = model.Status == ModelStatus.Published ? $"; {model.Id} is published" : $"; {model.Id} is rejected and stays unpublished";
        }
        else
        {
            outcome = "";
        }

        var level = evaluated.Verdict == EvaluationVerdict.Promote ? EventLevel.Info : EventLevel.Warn;
        events.Add(db, job.Id, $"Evaluation {Describe(evaluated.Verdict)}: {evaluated.Summary}{outcome}", level, data: new Dictionary<string, object?>
        {
            ["eval_id"] = evaluated.EvalId,
            ["base_run_id"] = evaluated.BaseRunId,
            ["tuned_run_id"] = evaluated.TunedRunId,
            ["verdict"] = evaluated.Verdict,
            ["baseline_pass_rate"] = evaluated.BaselinePassRate,
            ["candidate_pass_rate"] = evaluated.CandidatePassRate,
        });
        await db.SaveChangesAsync(context.CancellationToken);
    }

    private static string Describe(string verdict) => verdict switch
    {
        EvaluationVerdict.Promote => "passed",
        EvaluationVerdict.Reject => "did not pass",
        _ => "could not be completed",
    };
}
