using System.Text.Json.Serialization;
using FineTunePlatform.Contracts.Training;
using FineTunePlatform.Gateway.Auth;
using FineTunePlatform.Gateway.OpenAI;
using FineTunePlatform.Gateway.Routing;

namespace FineTunePlatform.Gateway.Apis;

/// <summary>
/// /v1/models: what the caller's project can call. The training service's registry answers for the built-in presets
/// and the fine-tuned models the project owns or was granted; the configured upstream providers add theirs. Each
/// model carries our addition `publication`: `published`, or `pending_evaluation`/`rejected` for a fine-tuned model
/// its project's promotion gate holds back (listed so its owner can evaluate it; chat answers 403 model_not_published),
/// and models on an imported open-weight base our addition `open_weights` (the base, its architecture and size).
/// GET /v1/models/{id}/weights exports a model tuned from such a base (<see cref="ModelWeightsApi"/>).
/// </summary>
public static class ModelsApi
{
    public static RouteGroupBuilder MapModelsApi(this IEndpointRouteBuilder app)
    {
        var models = app.MapGroup("/v1/models");
        models.MapGet("", async (ModelRouter router, TrainingService.TrainingServiceClient training, CancellationToken ct) =>
        {
            var registry = await training.ListModelsAsync(new ListModelsRequest(), cancellationToken: ct);
            return TypedResults.Ok(new ModelList("list", [.. registry.Models.Select(ModelObject.From), .. router.All().Select(ModelObject.From)]));
        }).RequireAuthorization(Policies.Reader);
        // One catch-all for a model and its weights: ids may hold '/' (an imported base named like a Hugging Face repo).
        models.MapGet("/{**modelId}", async (string modelId, HttpContext context, ModelRouter router, TrainingService.TrainingServiceClient training, OpenWeightsRuntime openWeights, CancellationToken ct) =>
            modelId.EndsWith(ModelWeightsApi.PathSuffix, StringComparison.Ordinal)
                ? await ModelWeightsApi.ExportAsync(modelId[..^ModelWeightsApi.PathSuffix.Length], context, router, openWeights, ct)
                : router.Find(modelId) is { } route
                    ? Results.Ok(ModelObject.From(route))
                    : Results.Ok(ModelObject.From(await training.GetModelAsync(new GetModelRequest { ModelId = modelId }, cancellationToken: ct))))
            .RequireAuthorization(Policies.Reader);
        models.MapDelete("/{**modelId}", async (string modelId, TrainingService.TrainingServiceClient training, CancellationToken ct) =>
        {
            var deleted = await training.DeleteModelAsync(new DeleteModelRequest { ModelId = modelId }, cancellationToken: ct);
            return Results.Ok(new DeletedObject(deleted.ModelId, "model", deleted.Deleted));
        }).RequireAuthorization(Policies.Owner);
        return models;
    }

    public sealed record ModelObject(
        [property: JsonPropertyName("id")] string Id,
        [property: JsonPropertyName("object")] string Object,
        [property: JsonPropertyName("created")] long Created,
        [property: JsonPropertyName("owned_by")] string OwnedBy,
        [property: JsonPropertyName("publication")] string Publication,
        [property: JsonPropertyName("open_weights"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] OpenWeightsObject? OpenWeights = null)
    {
        public const string Published = "published";

        public static ModelObject From(ModelRoute route) => new(route.Model, "model", 0, route.ProviderName, Published);

        // The registry's status is published, pending_evaluation or rejected; empty from a training service that
        // predates the promotion gate, whose models are all published.
        public static ModelObject From(Model model) => new(model.Id, "model", model.CreatedAt, model.OwnedBy, model.Status is { Length: > 0 } status ? status : Published,
            model.Backend == ModelBackends.OpenWeights && model.OpenWeights is { } weights
                ? new OpenWeightsObject(model.RootModel, weights.Architecture, weights.Parameters, weights.ContextLength, weights.WeightBytes)
                : null);
    }

    /// <summary>Our addition on models whose root is an imported open-weight base: what that base is.</summary>
    public sealed record OpenWeightsObject(
        [property: JsonPropertyName("base_model")] string BaseModel,
        [property: JsonPropertyName("architecture")] string Architecture,
        [property: JsonPropertyName("parameters")] long Parameters,
        [property: JsonPropertyName("context_length")] int ContextLength,
        [property: JsonPropertyName("weight_bytes")] long WeightBytes);

    public sealed record ModelList(
        [property: JsonPropertyName("object")] string Object,
        [property: JsonPropertyName("data")] IReadOnlyList<ModelObject> Data);
}
