using System.Text.Json;
using System.Text.Json.Nodes;
using FineTunePlatform.Evaluation.Evals;
using FineTunePlatform.Evaluation.Graders;

namespace FineTunePlatform.Evaluation.Runs;

/// <summary>
/// A run's data_source as OpenAI sends it:
/// - `jsonl`: items (each {"item": {...}, "sample": {...}?}) graded as they are, samples included;
/// - `completions`: a model sampled for every item, its prompt given as `input_messages` (a template rendered with
///   the item, or an item_reference naming the item's own messages) with `sampling_params`.
/// Items come inline (`source.type = file_content`), from an uploaded JSONL file (`source.type = file_id`), or
/// (completions only) from the project's stored chat completions (`source.type = stored_completions`, read from the
/// gateway that stores them): each is {"item": {"input": [request messages]}, "sample": {the stored answer}}, so
/// without a `model` the stored answers are graded as they are, and with one the model is sampled again on
/// `input_messages` (by default `item.input`).
/// </summary>
public sealed class RunDataSource
{
    private RunDataSource(string type, JsonObject source)
    {
        Type = type;
        Source = source;
    }

    public string Type { get; }

    public JsonObject Source { get; }

    /// <summary>The sampled model (completions only).</summary>
    public string? Model { get; private init; }

    public IReadOnlyList<PromptMessage>? Template { get; private init; }

    /// <summary>A path such as item.messages whose value is the prompt's message list.</summary>
    public string? ItemReference { get; private init; }

    public SamplingParams Sampling { get; private init; } = SamplingParams.Default;

    /// <summary>The items given inline, or null when they come from a file.</summary>
    public JsonArray? InlineContent => Source["content"] as JsonArray;

    public string? FileId => Source["id"]?.GetValue<string>();

    /// <summary>The stored-completions filters, when the items are the project's stored completions.</summary>
    public StoredCompletionsSource? StoredCompletions { get; private init; }

    public static RunDataSource Read(string json)
    {
        JsonObject dataSource;
        try
        {
            dataSource = JsonNode.Parse(json) as JsonObject ?? throw new InvalidEvalException("'data_source' must be an object.", "data_source");
        }
        catch (JsonException)
        {
            throw new InvalidEvalException("'data_source' is not valid JSON.", "data_source");
        }

        var type = Json.String(dataSource, "type", "data_source.type");
        if (type == "responses")
        {
            throw new InvalidEvalException("data_source type 'responses' is not supported: this platform serves chat completions. Use 'completions'.", "data_source.type");
        }

        if (type is not ("jsonl" or "completions"))
        {
            throw new InvalidEvalException($"data_source type must be 'jsonl' or 'completions', not '{type}'.", "data_source.type");
        }

        var source = ReadSource(dataSource);
        if (type == "jsonl")
        {
            return source["type"]?.GetValue<string>() == "stored_completions"
                ? throw new InvalidEvalException("source type 'stored_completions' needs a 'completions' data source.", "data_source.source.type")
                : new RunDataSource(type, source);
        }

        var stored = source["type"]?.GetValue<string>() == "stored_completions" ? StoredCompletionsSource.Read(source) : null;
        if (stored is not null && dataSource["model"] is null && dataSource["input_messages"] is null)
        {
            // Grade what was answered: no sampling.
            return new RunDataSource(type, source) { StoredCompletions = stored };
        }

        if (stored is not null && dataSource["input_messages"] is null)
        {
            dataSource["input_messages"] = new JsonObject { ["type"] = "item_reference", ["item_reference"] = "item.input" };
        }

        var model = Json.String(dataSource, "model", "data_source.model");
        var sampling = dataSource["sampling_params"] is JsonObject parameters
            ? EvalDefinition.Sampling(parameters, "data_source.sampling_params", "max_completion_tokens")
            : SamplingParams.Default;
        if (dataSource["input_messages"] is not JsonObject inputMessages)
        {
            throw new InvalidEvalException("'input_messages' is required for a completions data source.", "data_source.input_messages");
        }

        var inputType = Json.String(inputMessages, "type", "data_source.input_messages.type");
        return inputType switch
        {
            "template" => new RunDataSource(type, source)
            {
                StoredCompletions = stored,
                Model = model,
                Sampling = sampling,
                Template = EvalDefinition.Messages(inputMessages, "data_source.input_messages", "template"),
            },
            "item_reference" => new RunDataSource(type, source)
            {
                StoredCompletions = stored,
                Model = model,
                Sampling = sampling,
                ItemReference = Json.String(inputMessages, "item_reference", "data_source.input_messages.item_reference") is var reference
                    && reference.StartsWith("item.", StringComparison.Ordinal)
                    ? reference
                    : throw new InvalidEvalException("'item_reference' must name a field of the item, e.g. 'item.messages'.", "data_source.input_messages.item_reference"),
            },
            _ => throw new InvalidEvalException("'input_messages.type' must be 'template' or 'item_reference'.", "data_source.input_messages.type"),
        };
    }

    /// <summary>
    /// Reads a run's data source and checks its inline items against the eval's item schema (items from a file are
    /// checked as they are read); InvalidEvalException names the offending param.
    /// </summary>
    public static RunDataSource ReadFor(Evals.Eval eval, string json, int maxItems)
    {
        var dataSource = Read(json);
        if (dataSource.InlineContent is { } content)
        {
            if (content.Count > maxItems)
            {
                throw new InvalidEvalException($"A run grades at most {maxItems} items.", "data_source.source.content");
            }

            var schema = JsonNode.Parse(eval.ItemSchema);
            for (var i = 0; i < content.Count; i++)
            {
                if (ItemSchema.Mismatch(content[i]!["item"], schema) is { } mismatch)
                {
                    throw new InvalidEvalException($"Item {i} does not match the eval's item_schema: {mismatch}.", $"data_source.source.content[{i}].item");
                }
            }
        }

        return dataSource;
    }

    /// <summary>The prompt for one item: the template rendered with it, or the messages it carries.</summary>
    public List<PromptMessage> Prompt(JsonNode? item)
    {
        var input = new GradingInput(item, null);
        if (Template is not null)
        {
            return Template.Select(message => message with { Content = ItemTemplate.Render(message.Content, input) }).ToList();
        }

        if (ItemTemplate.Resolve(ItemReference!, input) is not JsonArray messages)
        {
            throw new InvalidEvalException($"'{ItemReference}' is not a list of messages in this item.", "data_source.input_messages.item_reference");
        }

        return messages.Select(message => new PromptMessage(
            message?["role"]?.GetValue<string>() ?? "user",
            ItemTemplate.Text(message?["content"]))).ToList();
    }

    private static JsonObject ReadSource(JsonObject dataSource)
    {
        if (dataSource["source"] is not JsonObject source)
        {
            throw new InvalidEvalException("'source' is required: {\"type\":\"file_content\",\"content\":[...]} or {\"type\":\"file_id\",\"id\":\"file-...\"}.", "data_source.source");
        }

        switch (Json.String(source, "type", "data_source.source.type"))
        {
            case "file_content":
                if (source["content"] is not JsonArray content || content.Count == 0)
                {
                    throw new InvalidEvalException("'content' must be a non-empty array of {\"item\": {...}} objects.", "data_source.source.content");
                }

                for (var i = 0; i < content.Count; i++)
                {
                    if (content[i] is not JsonObject row || row["item"] is null)
                    {
                        throw new InvalidEvalException("Each content entry must be an object with an 'item'.", $"data_source.source.content[{i}]");
                    }

                    if (row.TryGetPropertyValue("sample", out var sample) && sample is not (null or JsonObject))
                    {
                        throw new InvalidEvalException("A content entry's 'sample' must be an object (e.g. {\"output_text\": \"...\"}).", $"data_source.source.content[{i}].sample");
                    }
                }

                return (JsonObject)source.DeepClone();
            case "file_id":
                Json.String(source, "id", "data_source.source.id");
                return (JsonObject)source.DeepClone();
            case "stored_completions":
                StoredCompletionsSource.Read(source);
                return (JsonObject)source.DeepClone();
            default:
                throw new InvalidEvalException("'source.type' must be 'file_content', 'file_id' or 'stored_completions'.", "data_source.source.type");
        }
    }
}

/// <summary>OpenAI's EvalStoredCompletionsSource: which stored completions a run takes (all optional; `created_*` are unix seconds, exclusive).</summary>
public sealed record StoredCompletionsSource(string? Model, IReadOnlyDictionary<string, string> Metadata, long? CreatedAfter, long? CreatedBefore, int? Limit)
{
    public static StoredCompletionsSource Read(JsonObject source)
    {
        var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
        switch (source["metadata"])
        {
            case null:
                break;
            case JsonObject pairs:
                foreach (var (key, value) in pairs)
                {
                    metadata[key] = value?.GetValueKind() == JsonValueKind.String
                        ? value.GetValue<string>()
                        : throw new InvalidEvalException($"'metadata.{key}' must be a string.", "data_source.source.metadata");
                }

                break;
            default:
                throw new InvalidEvalException("'metadata' must be an object of string values.", "data_source.source.metadata");
        }

        var limit = Integer(source, "limit");
        return new StoredCompletionsSource(
            Json.OptionalString(source, "model", "data_source.source.model") is { Length: > 0 } model ? model : null,
            metadata,
            Integer(source, "created_after"),
            Integer(source, "created_before"),
            limit is null ? null : limit >= 1 ? (int)Math.Min(limit.Value, int.MaxValue)
                : throw new InvalidEvalException("'limit' must be at least 1.", "data_source.source.limit"));
    }

    private static long? Integer(JsonObject source, string field) => source[field] switch
    {
        null => null,
        JsonValue value when value.GetValueKind() == JsonValueKind.Number && value.TryGetValue<long>(out var number) => number,
        _ => throw new InvalidEvalException($"'{field}' must be an integer.", $"data_source.source.{field}"),
    };
}
