using FineTunePlatform.Contracts.IntegrationEvents;
using FineTunePlatform.Evaluation.Graders;
using FineTunePlatform.Evaluation.Grpc;
using FineTunePlatform.Evaluation.Infrastructure;
using FineTunePlatform.Evaluation.JobEvaluations;
using FineTunePlatform.Evaluation.Runs;
using FineTunePlatform.ServiceDefaults;
using Grpc.Core;
using MassTransit;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using JobRequest = FineTunePlatform.Contracts.Training.JobRequest;
using TrainingJob = FineTunePlatform.Contracts.Training.TrainingJob;
using TrainingService = FineTunePlatform.Contracts.Training.TrainingService;

namespace FineTunePlatform.Evaluation.IntegrationEvents;

/// <summary>
/// Starts a succeeded job's automatic evaluation on TrainingJobFinished: the message is a nudge, so the job (its
/// status, models and evaluation request) is read from the training service over gRPC, as the project the message
/// names (another project's job is not found there). Then one run of its eval on the base model and
/// one on the tuned model, queued with the job's evaluation row in one transaction (the job id is the key, so a
/// redelivery adds nothing). The runs are the project's own, visible in its evals API; they call models as the
/// project, not as a key. Named apart from the gateway's consumer of the same event: the kebab-case formatter makes
/// a queue of the consumer's name, and two services sharing one would take turns at each other's messages.
/// </summary>
public sealed class StartJobEvaluationConsumer(
    EvaluationDbContext db,
    RunSignal signal,
    [FromKeyedServices(JobEvaluationMonitor.Wake)] RunSignal monitor,
    IOptions<RunOptions> runOptions,
    TrainingService.TrainingServiceClient training,
    TimeProvider time) : IConsumer<TrainingJobFinished>
{
    public async Task Consume(ConsumeContext<TrainingJobFinished> context)
    {
        TrainingJob job;
        try
        {
            job = await training.GetJobAsync(new JobRequest { JobId = context.Message.JobId },
                new InternalCaller(context.Message.ProjectId, Roles.Reader, null).ToMetadata(),
                deadline: DateTime.UtcNow.AddSeconds(30), cancellationToken: context.CancellationToken);
        }
        catch (RpcException ex) when (ex.StatusCode == StatusCode.NotFound)
        {
            return;
        }

        if (job is not { Status: JobStatus.Succeeded, FineTunedModel.Length: > 0, Evaluation: { } requested })
        {
            return;
        }

        var finished = new JobFinished(job.Id, job.ProjectId, job.Model);
        var tunedModel = job.FineTunedModel;
        var evaluation = new JobEvaluationRequest(requested.EvalId, requested.DataSourceJson, requested.MinImprovement);

        var existing = await db.JobEvaluations.FirstOrDefaultAsync(existing => existing.JobId == finished.JobId, context.CancellationToken);
        if (existing is not null)
        {
            // Training asks again while it has no verdict: if one was reached and sent, it was lost on the way.
            if (existing.PublishedAt is not null)
            {
                existing.PublishedAt = null;
                await db.SaveChangesAsync(context.CancellationToken);
                monitor.Notify();
            }

            return;
        }

        var now = time.GetUtcNow();
        var eval = await db.Evals.AsNoTracking().FirstOrDefaultAsync(eval => eval.Id == evaluation.EvalId && eval.ProjectId == finished.ProjectId, context.CancellationToken);
        string? failure = null;
        (string Base, string Tuned)? dataSources = null;
        if (eval is null)
        {
            failure = $"eval {evaluation.EvalId} no longer exists";
        }
        else
        {
            try
            {
                var forModels = JobEvaluation.DataSourcesFor(eval, evaluation.DataSourceJson, runOptions.Value.MaxItems, finished.BaseModel, tunedModel);
                dataSources = (forModels[0], forModels[1]);
            }
            catch (InvalidEvalException ex)
            {
                // Checked when the job was created; the eval may have been updated since.
                failure = $"the data source no longer fits eval {eval.Id}: {ex.Message}";
            }
        }

        var baseRun = dataSources is { } sources ? Run(finished, eval!, "base", finished.BaseModel, sources.Base, now) : null;
        var tunedRun = dataSources is { } tunedSources ? Run(finished, eval!, "tuned", tunedModel, tunedSources.Tuned, now) : null;
        db.JobEvaluations.Add(new JobEvaluation
        {
            JobId = finished.JobId,
            ProjectId = finished.ProjectId,
            EvalId = evaluation.EvalId,
            BaseModel = finished.BaseModel,
            TunedModel = tunedModel,
            BaseRunId = baseRun?.Id,
            TunedRunId = tunedRun?.Id,
            MinImprovement = evaluation.MinImprovement,
            CreatedAt = now,
            Verdict = failure is null ? null : EvaluationVerdict.Failed,
            Summary = failure,
            SettledAt = failure is null ? null : now,
        });
        if (baseRun is not null && tunedRun is not null)
        {
            db.Runs.AddRange(baseRun, tunedRun);
        }

        try
        {
            await db.SaveChangesAsync(context.CancellationToken);
        }
        catch (DbUpdateException ex) when (ex.InnerException is Npgsql.PostgresException { SqlState: Npgsql.PostgresErrorCodes.UniqueViolation })
        {
            // A concurrent delivery of the same event created it first.
            return;
        }
        catch (DbUpdateException ex) when (ex.InnerException is Npgsql.PostgresException { SqlState: Npgsql.PostgresErrorCodes.ForeignKeyViolation })
        {
            // The eval was deleted between reading it and queueing its runs: the evaluation cannot run.
            var started = db.JobEvaluations.Local.Single(row => row.JobId == finished.JobId);
            db.ChangeTracker.Clear();
            db.JobEvaluations.Add(new JobEvaluation
            {
                JobId = started.JobId, ProjectId = started.ProjectId, EvalId = started.EvalId, BaseModel = started.BaseModel,
                TunedModel = started.TunedModel, MinImprovement = started.MinImprovement, CreatedAt = now,
                Verdict = EvaluationVerdict.Failed, Summary = $"eval {evaluation.EvalId} was deleted", SettledAt = now,
            });
            await db.SaveChangesAsync(context.CancellationToken);
            failure = "deleted";
        }

        if (failure is null)
        {
            signal.Notify();
        }
        else
        {
            monitor.Notify();
        }
    }

    /// <summary>What the training service says about the job the message named.</summary>
    private sealed record JobFinished(string JobId, string ProjectId, string BaseModel);

    private static EvalRun Run(JobFinished finished, Evals.Eval eval, string role, string model, string dataSource, DateTimeOffset now) => new()
    {
        Id = RandomIds.WithPrefix("evalrun_"),
        EvalId = eval.Id,
        ProjectId = finished.ProjectId,
        Name = $"{finished.JobId} {role}: {model}",
        Model = model,
        DataSource = dataSource,
        Metadata = EvalMapping.WriteMetadata(new Dictionary<string, string> { ["fine_tuning_job"] = finished.JobId, ["model_role"] = role }),
        CreatedAt = now,
    };
}
