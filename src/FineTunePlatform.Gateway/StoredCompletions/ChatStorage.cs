using System.Text.Json;
using System.Text.Json.Nodes;
using FineTunePlatform.Gateway.OpenAI;

namespace FineTunePlatform.Gateway.StoredCompletions;

/// <summary>
/// A chat request's `store` and `metadata`, checked before any model runs (a bad value is a 400 naming it, whether
/// or not the completion is stored, as OpenAI does).
/// </summary>
public sealed record ChatStorage(bool Store, IReadOnlyDictionary<string, string> Metadata)
{
    public static ChatStorage Read(JsonObject request)
    {
        var store = request["store"] switch
        {
            null => false,
            JsonValue value when value.GetValueKind() is JsonValueKind.True => true,
            JsonValue value when value.GetValueKind() is JsonValueKind.False => false,
            _ => throw new InvalidRequestException("Invalid type for 'store': expected a boolean.", "store", "invalid_type"),
        };
        return new ChatStorage(store, ReadMetadata(request["metadata"], "metadata"));
    }

    /// <summary>OpenAI's metadata: null or an object of at most 16 string pairs (keys up to 64 characters, values up to 512).</summary>
    public static Dictionary<string, string> ReadMetadata(JsonNode? node, string param)
    {
        var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
        if (node is null)
        {
            return metadata;
        }

        if (node is not JsonObject pairs)
        {
            throw new InvalidRequestException($"Invalid type for '{param}': expected an object of string values.", param, "invalid_type");
        }

        foreach (var (key, value) in pairs)
        {
            metadata[key] = value?.GetValueKind() == JsonValueKind.String
                ? value.GetValue<string>()
                : throw new InvalidRequestException($"Invalid type for '{param}.{key}': expected a string.", param, "invalid_type");
        }

        MetadataLimits.Check(metadata);
        return metadata;
    }

    /// <summary>
    /// The row for a completion just returned to the caller, under the id they received. As OpenAI's stored
    /// completions do, it also records the request's sampling parameters (`temperature`, `top_p`, `seed`) where given.
    /// </summary>
    public StoredCompletion ToRow(string projectId, string requestedModel, string requestId, JsonObject request, JsonObject completion)
    {
        foreach (var parameter in (ReadOnlySpan<string>)["temperature", "top_p", "seed"])
        {
            if (request[parameter] is { } value && !completion.ContainsKey(parameter))
            {
                completion[parameter] = value.DeepClone();
            }
        }

        return Row(projectId, requestedModel, requestId, request, completion);
    }

    private StoredCompletion Row(string projectId, string requestedModel, string requestId, JsonObject request, JsonObject completion) => new()
    {
        Id = completion["id"]!.GetValue<string>(),
        ProjectId = projectId,
        // The model asked for (what a caller filters by), even when a provider answers with a dated version.
        Model = requestedModel,
        Created = completion["created"]?.GetValueKind() == JsonValueKind.Number ? completion["created"]!.GetValue<long>() : DateTimeOffset.UtcNow.ToUnixTimeSeconds(),
        RequestId = requestId,
        InputMessages = request["messages"]!.ToJsonString(),
        Completion = completion.ToJsonString(),
        Metadata = JsonSerializer.Serialize(Metadata),
    };
}
