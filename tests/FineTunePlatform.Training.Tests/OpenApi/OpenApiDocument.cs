using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Json.Schema;

namespace FineTunePlatform.Training.Tests.OpenApi;

/// <summary>
/// OpenAI's OpenAPI document (the part for the APIs we implement, <c>openai-openapi.subset.json</c>) as a validator of
/// our answers: an answer is matched to its operation by method and path template, and its body is checked against
/// the schema the document gives for that status (JSON Schema 2020-12, as OpenAPI 3.1 defines it), every `data:` event
/// of a stream against the stream's schema. An error the operation does not describe is checked against
/// `ErrorResponse`, the shape every OpenAI error has.
/// </summary>
public sealed partial class OpenApiDocument
{
    private static readonly Uri DocumentUri = new("https://openai-openapi.test/openapi.json");

    private readonly List<(string Method, string Template, Regex Path, JsonObject Operation)> _operations = [];
    private readonly EvaluationOptions _options;
    private readonly JsonNode _document;

    private OpenApiDocument(JsonNode document)
    {
        _document = document;
        _options = new EvaluationOptions { OutputFormat = OutputFormat.Hierarchical };
        _options.SchemaRegistry.Register(new JsonNodeBaseDocument(document, DocumentUri));
        foreach (var (template, item) in document["paths"]!.AsObject())
        {
            var pattern = "^" + PathParameter().Replace(Regex.Escape(template), "[^/]+") + "$";
            foreach (var (method, operation) in item!.AsObject())
            {
                if (operation is JsonObject { } op && op.ContainsKey("responses"))
                {
                    _operations.Add((method.ToUpperInvariant(), template, new Regex(pattern), op));
                }
            }
        }
    }

    public static OpenApiDocument Load() =>
        new(JsonNode.Parse(File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "OpenApi", "openai-openapi.subset.json")))!);

    /// <summary>Every operation of the document, as "METHOD /path/{template}".</summary>
    public IEnumerable<string> Operations => _operations.Select(operation => $"{operation.Method} {operation.Template}");

    /// <summary>"METHOD /template" of the operation an answer belongs to; null for a route the document does not have (our additions).</summary>
    public string? OperationFor(string method, string path) =>
        _operations.Where(operation => operation.Method == method && operation.Path.IsMatch(path))
            .Select(operation => $"{operation.Method} {operation.Template}")
            .FirstOrDefault();

    /// <summary>What is wrong with an answer to `method path` (the path without /v1); empty when it conforms.</summary>
    public IReadOnlyList<string> Check(string method, string path, HttpStatusCode status, string? mediaType, string body)
    {
        var operation = _operations.FirstOrDefault(candidate => candidate.Method == method && candidate.Path.IsMatch(path));
        if (operation.Operation is null)
        {
            return [];
        }

        var responses = operation.Operation["responses"]!.AsObject();
        var code = ((int)status).ToString(System.Globalization.CultureInfo.InvariantCulture);
        var response = Resolve(responses[code] ?? responses["default"]);
        if (response is null)
        {
            return (int)status >= 400
                ? CheckJson(SchemaRef("ErrorResponse"), body)
                : [$"status {code} is not an answer the document gives for {method} {operation.Template} ({string.Join(", ", responses.Select(pair => pair.Key))})"];
        }

        if (response["content"] is not JsonObject content)
        {
            return body.Length == 0 ? [] : [$"a body where the document has none for status {code}"];
        }

        // The document's own bug: some operations describe a 400 as a bare Error, which no OpenAI client reads; every
        // OpenAI error is {"error": Error}.
        if ((int)status >= 400)
        {
            return CheckJson(SchemaRef("ErrorResponse"), body);
        }

        if (mediaType == "text/event-stream")
        {
            return content["text/event-stream"]?["schema"] is { } eventSchema
                ? CheckEvents(eventSchema, body)
                : [$"a stream where the document has {string.Join(", ", content.Select(pair => pair.Key))}"];
        }

        var schema = content["application/json"]?["schema"];
        if (schema is null)
        {
            return [$"{mediaType} where the document has {string.Join(", ", content.Select(pair => pair.Key))}"];
        }

        // A file's content is the file itself: the document types it as a string, which bytes always are.
        return schema["type"]?.GetValue<string>() == "string" ? [] : CheckJson(schema, body);
    }

    private IReadOnlyList<string> CheckEvents(JsonNode schema, string body)
    {
        var problems = new List<string>();
        foreach (var line in body.Split('\n'))
        {
            if (line.StartsWith("data: ", StringComparison.Ordinal) && line != "data: [DONE]")
            {
                problems.AddRange(CheckJson(schema, line["data: ".Length..]).Select(problem => $"event {line[..Math.Min(line.Length, 80)]}: {problem}"));
            }
        }

        return problems;
    }

    private IReadOnlyList<string> CheckJson(JsonNode schema, string body)
    {
        JsonNode? instance;
        try
        {
            instance = JsonNode.Parse(body);
        }
        catch (System.Text.Json.JsonException ex)
        {
            return [$"the body is not JSON: {ex.Message}"];
        }

        var validator = JsonSchema.FromText(Absolute(schema).ToJsonString());
        var result = validator.Evaluate(instance, _options);
        return result.IsValid
            ? []
            : [.. Leaves(result, instance).Distinct()];
    }

    /// <summary>
    /// The failures along failing paths only: an alternative that failed inside an anyOf/oneOf that passed is not a
    /// failure of the answer. Each says where it is in the answer and in the document.
    /// </summary>
    private static IEnumerable<string> Leaves(EvaluationResults result, JsonNode? instance)
    {
        if (result.IsValid)
        {
            yield break;
        }

        foreach (var (keyword, message) in result.Errors ?? new Dictionary<string, string>())
        {
            var value = result.InstanceLocation.TryEvaluate(instance, out var node) ? node?.ToJsonString() ?? "null" : "?";
            yield return $"{result.InstanceLocation} = {(value.Length > 60 ? value[..60] + "..." : value)} ({keyword} at {result.EvaluationPath}): {message}";
        }

        foreach (var detail in result.Details)
        {
            foreach (var leaf in Leaves(detail, instance))
            {
                yield return leaf;
            }
        }
    }

    /// <summary>A schema of the document with its references made absolute, so it can be evaluated on its own.</summary>
    private static JsonNode Absolute(JsonNode schema)
    {
        var copy = schema.DeepClone();
        void Visit(JsonNode? node)
        {
            switch (node)
            {
                case JsonObject obj:
                    if (obj["$ref"] is JsonValue reference && reference.GetValue<string>().StartsWith('#'))
                    {
                        obj["$ref"] = DocumentUri + reference.GetValue<string>();
                    }

                    foreach (var (_, value) in obj.ToList())
                    {
                        Visit(value);
                    }

                    break;
                case JsonArray array:
                    foreach (var item in array)
                    {
                        Visit(item);
                    }

                    break;
            }
        }

        Visit(copy);
        return copy;
    }

    private static JsonNode SchemaRef(string name) => new JsonObject { ["$ref"] = $"#/components/schemas/{name}" };

    /// <summary>A response of the operation, following a reference into components/responses.</summary>
    private JsonObject? Resolve(JsonNode? response) =>
        response?["$ref"] is JsonValue reference
            ? _document["components"]!["responses"]![reference.GetValue<string>().Split('/')[^1]]!.AsObject()
            : response?.AsObject();

    [GeneratedRegex(@"\\\{[^}]+}")]
    private static partial Regex PathParameter();
}
