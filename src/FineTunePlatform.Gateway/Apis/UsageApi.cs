using System.Text.Json.Serialization;
using FineTunePlatform.Gateway.Auth;
using FineTunePlatform.Gateway.Infrastructure;
using FineTunePlatform.Gateway.Usage;
using Microsoft.EntityFrameworkCore;

namespace FineTunePlatform.Gateway.Apis;

/// <summary>Our addition: GET /v1/usage, the caller's project's tokens by day, key and model.</summary>
public static class UsageApi
{
    public static RouteHandlerBuilder MapUsageApi(this IEndpointRouteBuilder app) =>
        app.MapGet("/v1/usage", async (HttpContext context, GatewayDbContext db, CancellationToken cancellationToken) =>
            TypedResults.Ok(await ListAsync(db, context.GetCaller().ProjectId, cancellationToken)))
        .RequireAuthorization(Policies.Reader);

    public static async Task<UsageList> ListAsync(GatewayDbContext db, string projectId, CancellationToken cancellationToken)
    {
        var rows = await db.DailyUsage.AsNoTracking().Where(usage => usage.ProjectId == projectId)
            .OrderByDescending(usage => usage.Day).ThenBy(usage => usage.Model).ThenBy(usage => usage.KeyId)
            .Take(10_000).ToListAsync(cancellationToken);
        return new UsageList("list", rows.ConvertAll(UsageObject.From));
    }

    public sealed record UsageObject(
        [property: JsonPropertyName("object")] string Object,
        [property: JsonPropertyName("project_id")] string ProjectId,
        [property: JsonPropertyName("api_key_id")] string ApiKeyId,
        [property: JsonPropertyName("model")] string Model,
        [property: JsonPropertyName("day")] string Day,
        [property: JsonPropertyName("num_model_requests")] long Requests,
        [property: JsonPropertyName("input_tokens")] long InputTokens,
        [property: JsonPropertyName("output_tokens")] long OutputTokens,
        [property: JsonPropertyName("training_tokens")] long TrainingTokens)
    {
        public static UsageObject From(DailyUsage usage) => new(
            "usage.completions.result", usage.ProjectId, usage.KeyId, usage.Model, usage.Day.ToString("yyyy-MM-dd", System.Globalization.CultureInfo.InvariantCulture),
            usage.Requests, usage.PromptTokens, usage.CompletionTokens, usage.TrainingTokens);
    }

    public sealed record UsageList(
        [property: JsonPropertyName("object")] string Object,
        [property: JsonPropertyName("data")] IReadOnlyList<UsageObject> Data);
}
