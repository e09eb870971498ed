using System.Text.Json;
using System.Text.Json.Nodes;
using FineTunePlatform.Contracts.Evaluation;
using FineTunePlatform.Gateway.Auth;
using FineTunePlatform.Gateway.OpenAI;

namespace FineTunePlatform.Gateway.Apis;

/// <summary>
/// OpenAI's graders API (/v1/fine_tuning/alpha/graders/run and /validate) over the evaluation service's graders, the
/// ones evals use. Running a grader may call a model (score_model, label_model), so it takes a member key; validating
/// takes a reader's.
/// </summary>
public static class GradersApi
{
    public static RouteGroupBuilder MapGradersApi(this IEndpointRouteBuilder app)
    {
        var graders = app.MapGroup("/v1/fine_tuning/alpha/graders");
        graders.MapPost("/run", RunAsync).RequireAuthorization(Policies.Member);
        graders.MapPost("/validate", ValidateAsync).RequireAuthorization(Policies.Reader);
        return graders;
    }

    private static async Task<IResult> RunAsync(HttpRequest request, EvaluationService.EvaluationServiceClient evaluation, CancellationToken ct)
    {
        var body = await RequestBody.ReadObjectAsync(request, ct);
        var run = new RunGraderRequest
        {
            GraderJson = RequestBody.RawJson(body, "grader", JsonValueKind.Object),
            ModelSample = RequestBody.String(body, "model_sample") ?? throw new InvalidRequestException("'model_sample' is required: the text to grade.", "model_sample"),
        };
        if (body.TryGetProperty("item", out var item) && item.ValueKind != JsonValueKind.Null)
        {
            run.ItemJson = item.ValueKind == JsonValueKind.Object ? item.GetRawText() : throw new InvalidRequestException("'item' must be an object.", "item");
        }

        return Results.Json(GraderObjects.RunResult(await evaluation.RunGraderAsync(run, cancellationToken: ct)));
    }

    private static async Task<IResult> ValidateAsync(HttpRequest request, EvaluationService.EvaluationServiceClient evaluation, CancellationToken ct)
    {
        var body = await RequestBody.ReadObjectAsync(request, ct);
        var validated = await evaluation.ValidateGraderAsync(new ValidateGraderRequest { GraderJson = RequestBody.RawJson(body, "grader", JsonValueKind.Object) }, cancellationToken: ct);
        return Results.Json(new JsonObject { ["grader"] = JsonNode.Parse(validated.GraderJson) });
    }
}
