using FineTunePlatform.Contracts.Evaluation;
using FineTunePlatform.Evaluation.Evals;
using FineTunePlatform.Evaluation.Graders;
using FineTunePlatform.Evaluation.Infrastructure;
using FineTunePlatform.Evaluation.JobEvaluations;
using FineTunePlatform.Evaluation.Runs;
using FineTunePlatform.ServiceDefaults;
using Grpc.Core;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using ProtoEval = FineTunePlatform.Contracts.Evaluation.Eval;
using ProtoOutputItem = FineTunePlatform.Contracts.Evaluation.OutputItem;
using ProtoRun = FineTunePlatform.Contracts.Evaluation.EvalRun;

namespace FineTunePlatform.Evaluation.Grpc;

/// <summary>
/// The evaluation service's gRPC surface, thin: read the caller, validate through the domain, store, map. Every
/// query is filtered by the caller's project, so another project's eval, run or item is simply not found.
/// </summary>
public sealed class EvaluationGrpcService(
    EvaluationDbContext db,
    GraderRunner graders,
    RunSignal signal,
    IOptions<RunOptions> runOptions,
    TimeProvider time) : EvaluationService.EvaluationServiceBase
{

    public override async Task<ProtoEval> CreateEval(CreateEvalRequest request, ServerCallContext context)
    {
        var caller = context.GetCaller();
        MetadataLimits.Check(request.Metadata);
        var (dataSourceConfig, itemSchema) = Validated(() => EvalDefinition.ReadDataSourceConfig(request.DataSourceConfigJson));
        var (_, criteria) = Validated(() => EvalDefinition.ReadTestingCriteria(request.TestingCriteriaJson));
        var now = time.GetUtcNow();
        var eval = new Evals.Eval
        {
            Id = RandomIds.WithPrefix("eval_"),
            ProjectId = caller.ProjectId,
            Name = string.IsNullOrWhiteSpace(request.Name) ? "eval" : Name(request.Name),
            DataSourceConfig = dataSourceConfig.ToJsonString(),
            ItemSchema = itemSchema.ToJsonString(),
            TestingCriteria = criteria.ToJsonString(),
            Metadata = EvalMapping.WriteMetadata(request.Metadata),
            CreatedAt = now,
            UpdatedAt = now,
        };
        db.Evals.Add(eval);
        await db.SaveChangesAsync(context.CancellationToken);
        return eval.ToContract();
    }

    public override async Task<ProtoEval> GetEval(EvalRequest request, ServerCallContext context) =>
        (await FindEvalAsync(context, request.EvalId, tracked: false)).ToContract();

    public override async Task<ProtoEval> UpdateEval(UpdateEvalRequest request, ServerCallContext context)
    {
        var eval = await FindEvalAsync(context, request.EvalId, tracked: true);
        if (request.HasName)
        {
            eval.Name = Name(request.Name);
        }

        if (request.ReplaceMetadata)
        {
            MetadataLimits.Check(request.Metadata);
            eval.Metadata = EvalMapping.WriteMetadata(request.Metadata);
        }

        eval.UpdatedAt = time.GetUtcNow();
        await db.SaveChangesAsync(context.CancellationToken);
        return eval.ToContract();
    }

    public override async Task<ListEvalsResponse> ListEvals(ListEvalsRequest request, ServerCallContext context)
    {
        var caller = context.GetCaller();
        var limit = PageSizes.Of(request.Limit);
        var ascending = PageSizes.Ascending(request.Order, defaultAscending: false);
        var byUpdate = request.OrderBy switch
        {
            "" or "created_at" => false,
            "updated_at" => true,
            _ => throw PlatformException.InvalidArgument("'order_by' must be created_at or updated_at.", "order_by"),
        };
        var query = db.Evals.AsNoTracking().Where(eval => eval.ProjectId == caller.ProjectId);
        if (!string.IsNullOrEmpty(request.After))
        {
            var after = await query.Where(eval => eval.Id == request.After).Select(eval => new { eval.Id, eval.CreatedAt, eval.UpdatedAt }).FirstOrDefaultAsync(context.CancellationToken)
                ?? throw PlatformException.InvalidArgument($"'after' names no eval of this project: {request.After}", "after");
            var at = byUpdate ? after.UpdatedAt : after.CreatedAt;
            query = (byUpdate, ascending) switch
            {
                (false, false) => query.Where(eval => eval.CreatedAt < at || (eval.CreatedAt == at && string.Compare(eval.Id, after.Id) < 0)),
                (false, true) => query.Where(eval => eval.CreatedAt > at || (eval.CreatedAt == at && string.Compare(eval.Id, after.Id) > 0)),
                (true, false) => query.Where(eval => eval.UpdatedAt < at || (eval.UpdatedAt == at && string.Compare(eval.Id, after.Id) < 0)),
                (true, true) => query.Where(eval => eval.UpdatedAt > at || (eval.UpdatedAt == at && string.Compare(eval.Id, after.Id) > 0)),
            };
        }

        query = (byUpdate, ascending) switch
        {
            (false, false) => query.OrderByDescending(eval => eval.CreatedAt).ThenByDescending(eval => eval.Id),
            (false, true) => query.OrderBy(eval => eval.CreatedAt).ThenBy(eval => eval.Id),
            (true, false) => query.OrderByDescending(eval => eval.UpdatedAt).ThenByDescending(eval => eval.Id),
            (true, true) => query.OrderBy(eval => eval.UpdatedAt).ThenBy(eval => eval.Id),
        };
        var page = await query.Take(limit + 1).ToListAsync(context.CancellationToken);
        var response = new ListEvalsResponse { HasMore = page.Count > limit };
        response.Evals.AddRange(page.Take(limit).Select(eval => eval.ToContract()));
        return response;
    }

    public override async Task<DeleteEvalResponse> DeleteEval(EvalRequest request, ServerCallContext context)
    {
        var eval = await FindEvalAsync(context, request.EvalId, tracked: true);
        // Runs and their output items go with it (cascade); an executing run notices at its next write and stops.
        db.Evals.Remove(eval);
        await db.SaveChangesAsync(context.CancellationToken);
        return new DeleteEvalResponse { EvalId = eval.Id, Deleted = true };
    }

    public override async Task<ProtoRun> CreateRun(CreateRunRequest request, ServerCallContext context)
    {
        var caller = context.GetCaller();
        var eval = await FindEvalAsync(context, request.EvalId, tracked: false);
        MetadataLimits.Check(request.Metadata);
        var dataSource = Validated(() => RunDataSource.ReadFor(eval, request.DataSourceJson, runOptions.Value.MaxItems));
        var run = new Runs.EvalRun
        {
            Id = RandomIds.WithPrefix("evalrun_"),
            EvalId = eval.Id,
            ProjectId = caller.ProjectId,
            KeyId = caller.KeyId,
            Name = string.IsNullOrWhiteSpace(request.Name) ? dataSource.Model ?? "run" : Name(request.Name),
            Model = dataSource.Model,
            DataSource = request.DataSourceJson,
            Metadata = EvalMapping.WriteMetadata(request.Metadata),
            CreatedAt = time.GetUtcNow(),
        };
        db.Runs.Add(run);
        await db.SaveChangesAsync(context.CancellationToken);
        signal.Notify();
        return run.ToContract();
    }

    public override async Task<ProtoRun> GetRun(RunRequest request, ServerCallContext context) =>
        (await FindRunAsync(context, request.EvalId, request.RunId)).ToContract();

    public override async Task<ListRunsResponse> ListRuns(ListRunsRequest request, ServerCallContext context)
    {
        var eval = await FindEvalAsync(context, request.EvalId, tracked: false);
        var limit = PageSizes.Of(request.Limit);
        var ascending = PageSizes.Ascending(request.Order, defaultAscending: true);
        var query = db.Runs.AsNoTracking().Where(run => run.EvalId == eval.Id);
        if (!string.IsNullOrEmpty(request.Status))
        {
            query = RunStatus.All.Contains(request.Status)
                ? query.Where(run => run.Status == request.Status)
                : throw PlatformException.InvalidArgument($"'status' must be one of {string.Join(", ", RunStatus.All)}.", "status");
        }

        if (!string.IsNullOrEmpty(request.After))
        {
            var after = await db.Runs.AsNoTracking().Where(run => run.EvalId == eval.Id && run.Id == request.After).Select(run => new { run.Id, run.CreatedAt }).FirstOrDefaultAsync(context.CancellationToken)
                ?? throw PlatformException.InvalidArgument($"'after' names no run of this eval: {request.After}", "after");
            query = ascending
                ? query.Where(run => run.CreatedAt > after.CreatedAt || (run.CreatedAt == after.CreatedAt && string.Compare(run.Id, after.Id) > 0))
                : query.Where(run => run.CreatedAt < after.CreatedAt || (run.CreatedAt == after.CreatedAt && string.Compare(run.Id, after.Id) < 0));
        }

        query = ascending ? query.OrderBy(run => run.CreatedAt).ThenBy(run => run.Id) : query.OrderByDescending(run => run.CreatedAt).ThenByDescending(run => run.Id);
        var page = await query.Take(limit + 1).ToListAsync(context.CancellationToken);
        var response = new ListRunsResponse { HasMore = page.Count > limit };
        response.Runs.AddRange(page.Take(limit).Select(run => run.ToContract()));
        return response;
    }

    public override async Task<ProtoRun> CancelRun(RunRequest request, ServerCallContext context)
    {
        var run = await FindRunAsync(context, request.EvalId, request.RunId);
        // Conditional on the row: it waits for an executor's write in progress, then cancels only an unfinished run.
        var cancelled = await db.Runs.Where(row => row.Id == run.Id && (row.Status == RunStatus.Queued || row.Status == RunStatus.InProgress))
            .ExecuteUpdateAsync(setters => setters
                .SetProperty(row => row.Status, RunStatus.Canceled)
                .SetProperty(row => row.FinishedAt, time.GetUtcNow())
                .SetProperty(row => row.LeaseOwner, (string?)null)
                .SetProperty(row => row.LeaseUntil, (DateTimeOffset?)null), context.CancellationToken);
        if (cancelled == 0)
        {
            throw PlatformException.FailedPrecondition($"Run {run.Id} has already finished ({(await FindRunAsync(context, request.EvalId, request.RunId)).Status}).", null, "invalid_state");
        }

        return (await FindRunAsync(context, request.EvalId, request.RunId)).ToContract();
    }

    public override async Task<DeleteRunResponse> DeleteRun(RunRequest request, ServerCallContext context)
    {
        var run = await FindRunAsync(context, request.EvalId, request.RunId);
        await db.Runs.Where(row => row.Id == run.Id).ExecuteDeleteAsync(context.CancellationToken);
        return new DeleteRunResponse { RunId = run.Id, Deleted = true };
    }

    public override async Task<ListOutputItemsResponse> ListOutputItems(ListOutputItemsRequest request, ServerCallContext context)
    {
        var run = await FindRunAsync(context, request.EvalId, request.RunId);
        var limit = PageSizes.Of(request.Limit);
        var ascending = PageSizes.Ascending(request.Order, defaultAscending: true);
        var query = db.OutputItems.AsNoTracking().Where(item => item.RunId == run.Id);
        query = request.Status switch
        {
            "" => query,
            "pass" => query.Where(item => item.Status == OutputItemStatus.Pass),
            // OpenAI's filter values are pass and fail; an errored item did not pass either.
            "fail" => query.Where(item => item.Status != OutputItemStatus.Pass),
            _ => throw PlatformException.InvalidArgument("'status' must be pass or fail.", "status"),
        };
        if (!string.IsNullOrEmpty(request.After))
        {
            var after = await db.OutputItems.AsNoTracking().Where(item => item.RunId == run.Id && item.Id == request.After).Select(item => (int?)item.DatasourceItemId).FirstOrDefaultAsync(context.CancellationToken)
                ?? throw PlatformException.InvalidArgument($"'after' names no output item of this run: {request.After}", "after");
            query = ascending ? query.Where(item => item.DatasourceItemId > after) : query.Where(item => item.DatasourceItemId < after);
        }

        query = ascending ? query.OrderBy(item => item.DatasourceItemId) : query.OrderByDescending(item => item.DatasourceItemId);
        var page = await query.Take(limit + 1).ToListAsync(context.CancellationToken);
        var response = new ListOutputItemsResponse { HasMore = page.Count > limit };
        response.Items.AddRange(page.Take(limit).Select(item => item.ToContract()));
        return response;
    }

    public override async Task<ProtoOutputItem> GetOutputItem(OutputItemRequest request, ServerCallContext context)
    {
        var run = await FindRunAsync(context, request.EvalId, request.RunId);
        var item = await db.OutputItems.AsNoTracking().FirstOrDefaultAsync(item => item.RunId == run.Id && item.Id == request.OutputItemId, context.CancellationToken)
            ?? throw PlatformException.NotFound($"No output item '{request.OutputItemId}' in run {run.Id}.", "output_item_id");
        return item.ToContract();
    }

    public override async Task<RunComparison> CompareRuns(CompareRunsRequest request, ServerCallContext context)
    {
        var baseline = await FindRunAsync(context, request.EvalId, request.BaselineRunId, "baseline_run_id");
        var candidate = await FindRunAsync(context, request.EvalId, request.CandidateRunId, "candidate_run_id");
        foreach (var (run, param) in new[] { (baseline, "baseline_run_id"), (candidate, "candidate_run_id") })
        {
            if (run.Status != RunStatus.Completed)
            {
                throw PlatformException.FailedPrecondition($"Run {run.Id} is {run.Status}; only completed runs are compared.", param, "invalid_state");
            }
        }

        if (request.MinImprovement is < -1 or > 1)
        {
            throw PlatformException.InvalidArgument("'min_improvement' is a difference in pass rate, between -1 and 1.", "min_improvement");
        }

        var baselineItems = await RunComparer.OutcomesAsync(db, baseline.Id, context.CancellationToken);
        var candidateItems = await RunComparer.OutcomesAsync(db, candidate.Id, context.CancellationToken);
        var comparison = RunComparer.Compare(baselineItems, candidateItems, request.MinImprovement);
        comparison.EvalId = baseline.EvalId;
        comparison.Baseline = baseline.ToContract();
        comparison.Candidate = candidate.ToContract();
        return comparison;
    }

    public override async Task<ValidateJobEvaluationResponse> ValidateJobEvaluation(ValidateJobEvaluationRequest request, ServerCallContext context)
    {
        var caller = context.GetCaller();
        var eval = await db.Evals.AsNoTracking().FirstOrDefaultAsync(eval => eval.Id == request.EvalId && eval.ProjectId == caller.ProjectId, context.CancellationToken)
            ?? throw PlatformException.InvalidArgument($"No eval found with id '{request.EvalId}'.", "evaluation.eval_id");
        try
        {
            JobEvaluation.DataSourcesFor(eval, request.DataSourceJson, runOptions.Value.MaxItems, "validation");
        }
        catch (InvalidEvalException ex)
        {
            throw PlatformException.InvalidArgument(ex.Message, $"evaluation.{ex.Param}");
        }

        return new ValidateJobEvaluationResponse();
    }

    public override async Task<JobEvaluationResult> GetJobEvaluation(GetJobEvaluationRequest request, ServerCallContext context)
    {
        var caller = context.GetCaller();
        var evaluation = await db.JobEvaluations.AsNoTracking()
            .FirstOrDefaultAsync(evaluation => evaluation.JobId == request.JobId && evaluation.ProjectId == caller.ProjectId, context.CancellationToken)
            ?? throw PlatformException.NotFound($"No evaluation of job '{request.JobId}'.", "job_id");
        var result = new JobEvaluationResult
        {
            JobId = evaluation.JobId,
            EvalId = evaluation.EvalId,
            TunedModel = evaluation.TunedModel,
            BaseRunId = evaluation.BaseRunId ?? "",
            TunedRunId = evaluation.TunedRunId ?? "",
            Verdict = evaluation.Verdict ?? "",
            Summary = evaluation.Summary ?? "",
            SettledAt = evaluation.SettledAt?.ToUnixTimeSeconds() ?? 0,
        };
        if (evaluation.BaselinePassRate is { } baseline)
        {
            result.BaselinePassRate = baseline;
        }

        if (evaluation.CandidatePassRate is { } candidate)
        {
            result.CandidatePassRate = candidate;
        }

        return result;
    }

    public override Task<RunGraderResponse> RunGrader(RunGraderRequest request, ServerCallContext context) =>
        Validated(() => graders.RunAsync(request, context.GetCaller().ToMetadata(), context.CancellationToken));

    public override Task<ValidateGraderResponse> ValidateGrader(ValidateGraderRequest request, ServerCallContext context) =>
        Task.FromResult(Validated(() => GraderRunner.Validate(request)));

    private async Task<Evals.Eval> FindEvalAsync(ServerCallContext context, string evalId, bool tracked)
    {
        var caller = context.GetCaller();
        var query = tracked ? db.Evals : db.Evals.AsNoTracking();
        return await query.FirstOrDefaultAsync(eval => eval.Id == evalId && eval.ProjectId == caller.ProjectId, context.CancellationToken)
            ?? throw PlatformException.NotFound($"No eval found with id '{evalId}'.", "eval_id");
    }

    private async Task<Runs.EvalRun> FindRunAsync(ServerCallContext context, string evalId, string runId, string param = "run_id")
    {
        var caller = context.GetCaller();
        return await db.Runs.AsNoTracking().FirstOrDefaultAsync(run => run.Id == runId && run.EvalId == evalId && run.ProjectId == caller.ProjectId, context.CancellationToken)
            ?? throw PlatformException.NotFound($"No run found with id '{runId}' in eval '{evalId}'.", param);
    }

    private static T Validated<T>(Func<T> read)
    {
        try
        {
            return read();
        }
        catch (InvalidEvalException ex)
        {
            throw PlatformException.InvalidArgument(ex.Message, ex.Param);
        }
    }

    private static async Task<T> Validated<T>(Func<Task<T>> read)
    {
        try
        {
            return await read();
        }
        catch (InvalidEvalException ex)
        {
            throw PlatformException.InvalidArgument(ex.Message, ex.Param);
        }
    }

    private static string Name(string name) =>
        !StoredText.Fits(name, 256)
            ? throw PlatformException.InvalidArgument("'name' is at most 256 characters, without NUL characters.", "name")
            : name;
}
