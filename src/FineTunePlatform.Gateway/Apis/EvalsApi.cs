using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using FineTunePlatform.Contracts.Datasets;
using FineTunePlatform.Contracts.Evaluation;
using FineTunePlatform.Gateway.Auth;
using FineTunePlatform.Gateway.OpenAI;
using FineTunePlatform.Gateway.Routing;
using Grpc.Core;

namespace FineTunePlatform.Gateway.Apis;

/// <summary>
/// OpenAI's Evals API (/v1/evals, runs, output items) over the evaluation service, plus our base-versus-tuned
/// comparison: GET /v1/evals/{eval_id}/compare?baseline_run_id=...&amp;candidate_run_id=...&amp;min_improvement=...
/// Readers list and read; members create, update, cancel and delete.
/// </summary>
public static class EvalsApi
{
    public static RouteGroupBuilder MapEvalsApi(this IEndpointRouteBuilder app)
    {
        var evals = app.MapGroup("/v1/evals");
        evals.MapPost("", CreateEvalAsync).RequireAuthorization(Policies.Member);
        evals.MapGet("", ListEvalsAsync).RequireAuthorization(Policies.Reader);
        evals.MapGet("/{evalId}", async (string evalId, EvaluationService.EvaluationServiceClient evaluation, CancellationToken ct) =>
            Results.Json(EvalObjects.Eval(await evaluation.GetEvalAsync(new EvalRequest { EvalId = evalId }, cancellationToken: ct)))).RequireAuthorization(Policies.Reader);
        evals.MapPost("/{evalId}", UpdateEvalAsync).RequireAuthorization(Policies.Member);
        evals.MapDelete("/{evalId}", async (string evalId, EvaluationService.EvaluationServiceClient evaluation, CancellationToken ct) =>
        {
            var deleted = await evaluation.DeleteEvalAsync(new EvalRequest { EvalId = evalId }, cancellationToken: ct);
            return Results.Json(new JsonObject { ["object"] = "eval.deleted", ["deleted"] = deleted.Deleted, ["eval_id"] = deleted.EvalId });
        }).RequireAuthorization(Policies.Member);
        evals.MapGet("/{evalId}/compare", CompareRunsAsync).RequireAuthorization(Policies.Reader);

        var runs = evals.MapGroup("/{evalId}/runs");
        runs.MapPost("", CreateRunAsync).RequireAuthorization(Policies.Member);
        runs.MapGet("", ListRunsAsync).RequireAuthorization(Policies.Reader);
        runs.MapGet("/{runId}", async (string evalId, string runId, HttpRequest request, EvaluationService.EvaluationServiceClient evaluation, CancellationToken ct) =>
            Results.Json(EvalObjects.Run(await evaluation.GetRunAsync(new RunRequest { EvalId = evalId, RunId = runId }, cancellationToken: ct), BaseUrl(request)))).RequireAuthorization(Policies.Reader);
        // OpenAI cancels a run with a POST to the run itself.
        runs.MapPost("/{runId}", async (string evalId, string runId, HttpRequest request, EvaluationService.EvaluationServiceClient evaluation, CancellationToken ct) =>
            Results.Json(EvalObjects.Run(await evaluation.CancelRunAsync(new RunRequest { EvalId = evalId, RunId = runId }, cancellationToken: ct), BaseUrl(request)))).RequireAuthorization(Policies.Member);
        runs.MapDelete("/{runId}", async (string evalId, string runId, EvaluationService.EvaluationServiceClient evaluation, CancellationToken ct) =>
        {
            var deleted = await evaluation.DeleteRunAsync(new RunRequest { EvalId = evalId, RunId = runId }, cancellationToken: ct);
            return Results.Json(new JsonObject { ["object"] = "eval.run.deleted", ["deleted"] = deleted.Deleted, ["run_id"] = deleted.RunId });
        }).RequireAuthorization(Policies.Member);
        runs.MapGet("/{runId}/output_items", ListOutputItemsAsync).RequireAuthorization(Policies.Reader);
        runs.MapGet("/{runId}/output_items/{outputItemId}", async (string evalId, string runId, string outputItemId, EvaluationService.EvaluationServiceClient evaluation, CancellationToken ct) =>
            Results.Json(EvalObjects.OutputItem(await evaluation.GetOutputItemAsync(
                new OutputItemRequest { EvalId = evalId, RunId = runId, OutputItemId = outputItemId }, cancellationToken: ct)))).RequireAuthorization(Policies.Reader);
        return evals;
    }

    private static async Task<IResult> CreateEvalAsync(HttpRequest request, EvaluationService.EvaluationServiceClient evaluation, CancellationToken ct)
    {
        var body = await RequestBody.ReadObjectAsync(request, ct);
        var create = new CreateEvalRequest
        {
            Name = RequestBody.String(body, "name") ?? "",
            DataSourceConfigJson = RequestBody.RawJson(body, "data_source_config", JsonValueKind.Object),
            TestingCriteriaJson = RequestBody.RawJson(body, "testing_criteria", JsonValueKind.Array),
        };
        RequestBody.ReadMetadata(body, create.Metadata);
        // OpenAI answers 201 Created here (and the SDK accepts nothing else).
        return Results.Json(EvalObjects.Eval(await evaluation.CreateEvalAsync(create, cancellationToken: ct)), statusCode: StatusCodes.Status201Created);
    }

    private static async Task<IResult> UpdateEvalAsync(string evalId, HttpRequest request, EvaluationService.EvaluationServiceClient evaluation, CancellationToken ct)
    {
        var body = await RequestBody.ReadObjectAsync(request, ct);
        var update = new UpdateEvalRequest { EvalId = evalId, ReplaceMetadata = body.TryGetProperty("metadata", out _) };
        if (RequestBody.String(body, "name") is { } name)
        {
            update.Name = name;
        }

        RequestBody.ReadMetadata(body, update.Metadata);
        return Results.Json(EvalObjects.Eval(await evaluation.UpdateEvalAsync(update, cancellationToken: ct)));
    }

    private static async Task<IResult> ListEvalsAsync(HttpRequest request, EvaluationService.EvaluationServiceClient evaluation, CancellationToken ct)
    {
        var response = await evaluation.ListEvalsAsync(new ListEvalsRequest
        {
            After = request.Query["after"].ToString(),
            Limit = OpenAIList.Limit(request),
            Order = request.Query["order"].ToString(),
            OrderBy = request.Query["order_by"].ToString(),
        }, cancellationToken: ct);
        return Results.Json(OpenAIList.Of(response.Evals.Select(EvalObjects.Eval), response.HasMore, withCursorIds: true));
    }

    private static async Task<IResult> CreateRunAsync(string evalId, HttpRequest request, EvaluationService.EvaluationServiceClient evaluation,
        DatasetService.DatasetServiceClient datasets, ModelRouter router, ChatModels chatModels, CancellationToken ct)
    {
        var body = await RequestBody.ReadObjectAsync(request, ct);
        if (await InaccessibleRunInputAsync(body, request.HttpContext, datasets, router, chatModels, ct) is { } inaccessible)
        {
            return inaccessible;
        }

        var create = new CreateRunRequest
        {
            EvalId = evalId,
            Name = RequestBody.String(body, "name") ?? "",
            DataSourceJson = RequestBody.RawJson(body, "data_source", JsonValueKind.Object),
        };
        RequestBody.ReadMetadata(body, create.Metadata);
        return Results.Json(EvalObjects.Run(await evaluation.CreateRunAsync(create, cancellationToken: ct), BaseUrl(request)), statusCode: StatusCodes.Status201Created);
    }

    /// <summary>
    /// A run names a file and a model that its project must be able to use; the evaluation service would only find
    /// out once the run starts (a 201, then a failed run). Asked here, at create, like every other reference:
    /// another project's file or model is a 404 naming the param. The rest of the data source is the evaluation
    /// service's to check.
    /// </summary>
    private static async Task<IResult?> InaccessibleRunInputAsync(JsonElement body, HttpContext context, DatasetService.DatasetServiceClient datasets,
        ModelRouter router, ChatModels chatModels, CancellationToken ct)
    {
        // Only the data sources the platform runs name inputs to check; any other type is the evaluation service's 400.
        if (!body.TryGetProperty("data_source", out var dataSource) || dataSource.ValueKind != JsonValueKind.Object
            || RequestBody.String(dataSource, "type", "data_source.type") is not ("jsonl" or "completions"))
        {
            return null;
        }

        if (dataSource.TryGetProperty("source", out var source) && source.ValueKind == JsonValueKind.Object
            && RequestBody.String(source, "type", "data_source.source.type") == "file_id"
            && RequestBody.String(source, "id", "data_source.source.id") is { Length: > 0 } fileId)
        {
            try
            {
                await datasets.GetAsync(new GetFileRequest { FileId = fileId }, cancellationToken: ct);
            }
            catch (RpcException ex) when (ex.StatusCode == StatusCode.NotFound)
            {
                return OpenAIErrors.NotFound($"No such File object: {fileId}", "data_source.source.id");
            }
        }

        if (RequestBody.String(dataSource, "model", "data_source.model") is { Length: > 0 } model
            && router.Find(model) is null && !await chatModels.IsVisibleAsync(model, context.GetCaller(), ct))
        {
            return OpenAIErrors.NotFound($"The model `{model}` does not exist or you do not have access to it.", "data_source.model", "model_not_found");
        }

        return null;
    }

    private static async Task<IResult> ListRunsAsync(string evalId, HttpRequest request, EvaluationService.EvaluationServiceClient evaluation, CancellationToken ct)
    {
        var response = await evaluation.ListRunsAsync(new ListRunsRequest
        {
            EvalId = evalId,
            After = request.Query["after"].ToString(),
            Limit = OpenAIList.Limit(request),
            Order = request.Query["order"].ToString(),
            Status = request.Query["status"].ToString(),
        }, cancellationToken: ct);
        var baseUrl = BaseUrl(request);
        return Results.Json(OpenAIList.Of(response.Runs.Select(run => EvalObjects.Run(run, baseUrl)), response.HasMore, withCursorIds: true));
    }

    private static async Task<IResult> ListOutputItemsAsync(string evalId, string runId, HttpRequest request, EvaluationService.EvaluationServiceClient evaluation, CancellationToken ct)
    {
        var response = await evaluation.ListOutputItemsAsync(new ListOutputItemsRequest
        {
            EvalId = evalId,
            RunId = runId,
            After = request.Query["after"].ToString(),
            Limit = OpenAIList.Limit(request),
            Order = request.Query["order"].ToString(),
            Status = request.Query["status"].ToString(),
        }, cancellationToken: ct);
        return Results.Json(OpenAIList.Of(response.Items.Select(EvalObjects.OutputItem), response.HasMore, withCursorIds: true));
    }

    private static async Task<IResult> CompareRunsAsync(string evalId, HttpRequest request, EvaluationService.EvaluationServiceClient evaluation, CancellationToken ct)
    {
        var compare = new CompareRunsRequest
        {
            EvalId = evalId,
            BaselineRunId = request.Query["baseline_run_id"].ToString(),
            CandidateRunId = request.Query["candidate_run_id"].ToString(),
        };
        if (compare.BaselineRunId.Length == 0 || compare.CandidateRunId.Length == 0)
        {
            return OpenAIErrors.BadRequest("'baseline_run_id' and 'candidate_run_id' are required.", compare.BaselineRunId.Length == 0 ? "baseline_run_id" : "candidate_run_id");
        }

        if (request.Query.TryGetValue("min_improvement", out var minImprovement))
        {
            if (!double.TryParse(minImprovement, NumberStyles.Float, CultureInfo.InvariantCulture, out var value))
            {
                return OpenAIErrors.BadRequest("'min_improvement' must be a number.", "min_improvement");
            }

            compare.MinImprovement = value;
        }

        return Results.Json(EvalObjects.Comparison(await evaluation.CompareRunsAsync(compare, cancellationToken: ct), BaseUrl(request)));
    }

    private static string BaseUrl(HttpRequest request) => $"{request.Scheme}://{request.Host}";
}
