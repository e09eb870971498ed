using System.Text.Json.Serialization;
using FineTunePlatform.Gateway.Auth;
using FineTunePlatform.Gateway.Routing;

namespace FineTunePlatform.Gateway.Apis;

/// <summary>
/// /v1/models: the models this gateway routes. Today the upstream providers' models; the training service's registry
/// (base presets and fine-tuned models) joins this list when it lands.
/// </summary>
public static class ModelsApi
{
    public static RouteGroupBuilder MapModelsApi(this IEndpointRouteBuilder app)
    {
        var models = app.MapGroup("/v1/models").RequireAuthorization(Policies.Reader);
        models.MapGet("", (ModelRouter router) => TypedResults.Ok(new ModelList("list", LocalModels().Concat(router.All().Select(ModelObject.From)).ToList())));
        models.MapGet("/{**modelId}", (string modelId, ModelRouter router) =>
            router.Find(modelId) is { } route ? Results.Ok(ModelObject.From(route))
            : LocalModels().FirstOrDefault(model => model.Id == modelId) is { } local ? Results.Ok(local)
            : ChatApi.ModelNotFound(modelId));
        return models;
    }

    private static IEnumerable<ModelObject> LocalModels() =>
        FineTunePlatform.LocalModels.ModelPresets.All.Select(preset => new ModelObject(preset.Name, "model", 0, "system"));

    public sealed record ModelObject(
        [property: JsonPropertyName("id")] string Id,
        [property: JsonPropertyName("object")] string Object,
        [property: JsonPropertyName("created")] long Created,
        [property: JsonPropertyName("owned_by")] string OwnedBy)
    {
        public static ModelObject From(ModelRoute route) => new(route.Model, "model", 0, route.ProviderName);
    }

    public sealed record ModelList(
        [property: JsonPropertyName("object")] string Object,
        [property: JsonPropertyName("data")] IReadOnlyList<ModelObject> Data);
}
