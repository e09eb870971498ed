using System.Text.Json;
using System.Text.Json.Nodes;
using Google.Protobuf.Collections;
using Microsoft.AspNetCore.Http.Json;
using Microsoft.Extensions.Options;

namespace FineTunePlatform.Gateway.OpenAI;

/// <summary>A request body that could not be read: the message and the `param` it concerns (answered as a 400).</summary>
public sealed class InvalidRequestException(string message, string? param, string? code = null) : Exception(message)
{
    public string? Param { get; } = param;

    public string? Code { get; } = code;
}

/// <summary>
/// The one way JSON request bodies are read, strictly, and their common fields checked. Every endpoint that takes
/// JSON reads through here (never through minimal-API body binding or another parser), so they all agree on what a
/// body says: a key given twice, text that is not valid UTF-8 and an escaped lone surrogate (`"\ud800"`) are a 400
/// naming where, instead of last-wins (`{"role":"reader","role":"owner"}` must not create an owner key) or a 500.
/// </summary>
public static class RequestBody
{
    /// <summary>
    /// System.Text.Json checks the grammar but not the text: invalid UTF-8 and lone surrogates only fail when a string
    /// is read (an InvalidOperationException, which used to escape as a 500), and its own duplicate-key check
    /// (AllowDuplicateProperties = false) names no path. So <see cref="CheckObject"/> walks every name and string
    /// once and reports exactly which one is wrong; binding to a type (<see cref="ReadAsync"/>) then runs with
    /// AllowDuplicateProperties = false as well, which also catches keys that differ only in case.
    /// </summary>
    private static readonly JsonDocumentOptions DocumentOptions = new() { MaxDepth = 64 };

    /// <summary>The body as a JSON object, or an <see cref="InvalidRequestException"/>.</summary>
    public static async Task<JsonElement> ReadObjectAsync(HttpRequest request, CancellationToken cancellationToken)
    {
        JsonDocument document;
        try
        {
            document = await JsonDocument.ParseAsync(request.Body, DocumentOptions, cancellationToken);
        }
        catch (JsonException ex)
        {
            throw new InvalidRequestException($"We could not parse the JSON body of your request. ({ex.Message})", null);
        }
        catch (InvalidOperationException)
        {
            throw InvalidText(null);
        }

        using (document)
        {
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                throw new InvalidRequestException("The request body must be a JSON object.", null);
            }

            CheckObject(root, "");
            return root.Clone();
        }
    }

    /// <summary>The body as a mutable JSON object (for a request relayed onwards), read as <see cref="ReadObjectAsync"/> reads it.</summary>
    public static async Task<JsonObject> ReadNodeAsync(HttpRequest request, CancellationToken cancellationToken) =>
        JsonObject.Create(await ReadObjectAsync(request, cancellationToken))!;

    /// <summary>The body bound to a request type with the API's JSON options, read as <see cref="ReadObjectAsync"/> reads it.</summary>
    public static async Task<T> ReadAsync<T>(HttpRequest request, CancellationToken cancellationToken)
    {
        var body = await ReadObjectAsync(request, cancellationToken);
        var options = request.HttpContext.RequestServices.GetRequiredService<IOptions<JsonOptions>>().Value.SerializerOptions;
        try
        {
            return body.Deserialize<T>(options) ?? throw new InvalidRequestException("The request body must be a JSON object.", null);
        }
        catch (JsonException ex)
        {
            var param = ex.Path is { Length: > 2 } path && path.StartsWith("$.", StringComparison.Ordinal) ? path[2..] : null;
            throw new InvalidRequestException(
                param is null ? $"We could not read the JSON body of your request. ({ex.Message})" : $"Invalid type or value for '{param}'.",
                param);
        }
    }

    /// <summary>Refuses duplicate keys and invalid text anywhere in the body, naming the place (`messages[0].content`).</summary>
    private static void CheckObject(JsonElement element, string path)
    {
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var property in element.EnumerateObject())
        {
            string name;
            try
            {
                name = property.Name;
            }
            catch (InvalidOperationException)
            {
                throw InvalidText(path.Length == 0 ? null : path);
            }

            var child = path.Length == 0 ? name : $"{path}.{name}";
            if (!names.Add(name))
            {
                throw new InvalidRequestException($"Duplicate key '{child}' in the JSON body: give each key once.", child);
            }

            CheckValue(property.Value, child);
        }
    }

    private static void CheckValue(JsonElement value, string path)
    {
        switch (value.ValueKind)
        {
            case JsonValueKind.Object:
                CheckObject(value, path);
                break;
            case JsonValueKind.Array:
                var index = 0;
                foreach (var item in value.EnumerateArray())
                {
                    CheckValue(item, $"{path}[{index++}]");
                }

                break;
            case JsonValueKind.String:
                try
                {
                    _ = value.GetString();
                }
                catch (InvalidOperationException)
                {
                    throw InvalidText(path);
                }

                break;
        }
    }

    private static InvalidRequestException InvalidText(string? param) => new(
        $"The JSON body has invalid text{(param is null ? "" : $" in '{param}'")}: strings must be valid UTF-8, and a \\u escape of a surrogate must be a complete pair.",
        param);

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
