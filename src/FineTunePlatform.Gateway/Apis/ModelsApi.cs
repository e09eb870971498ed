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
/// its project's promotion gate holds back (listed so its owner can evaluate it; chat answers 403 model_not_published).
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
        models.MapGet("/{**modelId}", async (string modelId, ModelRouter router, TrainingService.TrainingServiceClient training, CancellationToken ct) =>
            router.Find(modelId) is { } route
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
        [property: JsonPropertyName("publication")] string Publication)
    {
        public const string Published = "published";

        public static ModelObject From(ModelRoute route) => new(route.Model, "model", 0, route.ProviderName, Published);

        // The registry's status is published, pending_evaluation or rejected; empty from a training service that
        // predates the promotion gate, whose models are all published.
        public static ModelObject From(Model model) => new(model.Id, "model", model.CreatedAt, model.OwnedBy, model.Status is { Length: > 0 } status ? status : Published);
    }

    public sealed record ModelList(
        [property: JsonPropertyName("object")] string Object,
        [property: JsonPropertyName("data")] IReadOnlyList<ModelObject> Data);
}
