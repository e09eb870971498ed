using FineTunePlatform.Contracts.Evaluation;
using FineTunePlatform.Contracts.IntegrationEvents;
using FineTunePlatform.Training.Infrastructure;
using FineTunePlatform.Training.Jobs;
using FineTunePlatform.Training.Models;
using Grpc.Core;
using MassTransit;
using Microsoft.EntityFrameworkCore;

namespace FineTunePlatform.Training.IntegrationEvents;

/// <summary>
/// FineTunedModelEvaluated is a nudge: anything that can publish on the bus can send one, so its verdict is never
/// read. The consumer asks the evaluation service (gRPC, internal token, as the job's own project) for the job's
/// evaluation and records the verdict found there, tells the job's events, and moves the job's model to published or
/// rejected in the same transaction. The owner's record decides, not the order messages arrive in: a nudge with
/// nothing new (a redelivery, a forgery, a verdict not reached yet) changes nothing, and a verdict the evaluation
/// service holds replaces whatever the job recorded before it.
/// </summary>
public sealed class FineTunedModelEvaluatedConsumer(
    TrainingDbContext db,
    JobEventLog events,
    EvaluationService.EvaluationServiceClient evaluation) : IConsumer<FineTunedModelEvaluated>
{
    public async Task Consume(ConsumeContext<FineTunedModelEvaluated> context)
    {
        var job = await db.Jobs.FirstOrDefaultAsync(job => job.Id == context.Message.JobId, context.CancellationToken);
        if (job?.EvalId is null)
        {
            return;
        }

        // The job's project from our own row, never the message's: the evaluation service scopes the answer by it.
        var caller = new InternalCaller(job.ProjectId, Roles.Owner, null).ToMetadata();
        JobEvaluationResult recorded;
        try
        {
            recorded = await evaluation.GetJobEvaluationAsync(new GetJobEvaluationRequest { JobId = job.Id }, caller,
                deadline: DateTime.UtcNow.AddSeconds(30), cancellationToken: context.CancellationToken);
        }
        catch (RpcException ex) when (ex.StatusCode == StatusCode.NotFound)
        {
            return;
        }

        if (recorded.Verdict.Length == 0 || recorded.EvalId != job.EvalId || !job.RecordVerdict(recorded.Verdict))
        {
            return;
        }

        var model = await db.Models.FirstOrDefaultAsync(model => model.JobId == job.Id && model.Id == job.FineTunedModel, context.CancellationToken);
        var outcome = "";
        // Held for its evaluation, or set by an earlier verdict: the verdict on record decides.
        if (model is { Status: ModelStatus.PendingEvaluation } || (job.EvaluationGated && model is { Status: ModelStatus.Published or ModelStatus.Rejected }))
        {
            model.Status = recorded.Verdict == EvaluationVerdict.Promote ? ModelStatus.Published : ModelStatus.Rejected;
            outcome = model.Status == ModelStatus.Published ? $"; {model.Id} is published" : $"; {model.Id} is rejected and stays unpublished";
        }

        var level = recorded.Verdict == EvaluationVerdict.Promote ? EventLevel.Info : EventLevel.Warn;
        events.Add(db, job.Id, $"Evaluation {Describe(recorded.Verdict)}: {recorded.Summary}{outcome}", level, data: new Dictionary<string, object?>
        {
            ["eval_id"] = recorded.EvalId,
            ["base_run_id"] = recorded.BaseRunId,
            ["tuned_run_id"] = recorded.TunedRunId,
            ["verdict"] = recorded.Verdict,
            ["baseline_pass_rate"] = recorded.HasBaselinePassRate ? recorded.BaselinePassRate : null,
            ["candidate_pass_rate"] = recorded.HasCandidatePassRate ? recorded.CandidatePassRate : null,
        });
        try
        {
            await db.SaveChangesAsync(context.CancellationToken);
        }
        catch (DbUpdateConcurrencyException)
        {
            // Another delivery recorded the same verdict first (or the job row moved on): the next nudge reads again.
        }
    }

    private static string Describe(string verdict) => verdict switch
    {
        EvaluationVerdict.Promote => "passed",
        EvaluationVerdict.Reject => "did not pass",
        _ => "could not be completed",
    };
}
