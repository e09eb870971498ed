using System.Text.Json;
using Google.Protobuf.Collections;

namespace FineTunePlatform.Gateway.OpenAI;

/// <summary>A request body that could not be read: the message and the `param` it concerns (answered as a 400).</summary>
public sealed class InvalidRequestException(string message, string? param) : Exception(message)
{
    public string? Param { get; } = param;
}

/// <summary>The one way JSON request bodies are read and their common fields checked.</summary>
public static class RequestBody
{
    /// <summary>The body as a JSON object, or an <see cref="InvalidRequestException"/>.</summary>
    public static async Task<JsonElement> ReadObjectAsync(HttpRequest request, CancellationToken cancellationToken)
    {
        JsonElement body;
        try
        {
            using var document = await JsonDocument.ParseAsync(request.Body, cancellationToken: cancellationToken);
            body = document.RootElement.Clone();
        }
        catch (JsonException)
        {
            throw new InvalidRequestException("We could not parse the JSON body of your request.", null);
        }

        return body.ValueKind == JsonValueKind.Object
            ? body
            : throw new InvalidRequestException("The request body must be a JSON object.", null);
    }

    /// <summary>OpenAI's `metadata`: an object of string values (absent or null: none).</summary>
    public static void ReadMetadata(JsonElement body, MapField<string, string> into)
    {
        if (!body.TryGetProperty("metadata", out var metadata) || metadata.ValueKind == JsonValueKind.Null)
        {
            return;
        }

        if (metadata.ValueKind != JsonValueKind.Object)
        {
            throw new InvalidRequestException("'metadata' must be an object of string values.", "metadata");
        }

        foreach (var pair in metadata.EnumerateObject())
        {
            into[pair.Name] = pair.Value.ValueKind == JsonValueKind.String
                ? pair.Value.GetString()!
                : throw new InvalidRequestException($"'metadata.{pair.Name}' must be a string.", "metadata");
        }
    }

    /// <summary>An optional string field.</summary>
    public static string? String(JsonElement body, string name, string? param = null)
    {
        if (!body.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null)
        {
            return null;
        }

        return value.ValueKind == JsonValueKind.String ? value.GetString() : throw new InvalidRequestException($"'{name}' must be a string.", param ?? name);
    }

    /// <summary>A field that must be present with the given kind, as its JSON text (for a service that reads it).</summary>
    public static string RawJson(JsonElement body, string name, JsonValueKind kind, string? param = null) =>
        body.TryGetProperty(name, out var value) && value.ValueKind == kind
            ? value.GetRawText()
            : throw new InvalidRequestException($"'{name}' is required and must be {(kind == JsonValueKind.Array ? "an array" : "an object")}.", param ?? name);
}
