using System.Text.Json;
using System.Text.Json.Nodes;
using FineTunePlatform.Evaluation.Graders;

namespace FineTunePlatform.Evaluation.Evals;

/// <summary>
/// Reads an eval's definition as OpenAI's API sends it (data_source_config, testing_criteria), refusing what the
/// platform cannot run with the JSON path of the offending field, and gives the canonical forms that are stored.
/// The graders of a stored eval are read back through the same parser, so what runs is exactly what was accepted.
/// </summary>
public static class EvalDefinition
{
    public const int MaxCriteria = 32;

    /// <summary>The item schema, and the data_source_config OpenAI returns for it ({"type":"custom","schema":{...}}).</summary>
    public static (JsonObject DataSourceConfig, JsonObject ItemSchema) ReadDataSourceConfig(string json)
    {
        var config = Parse(json, "data_source_config") as JsonObject
            ?? throw new InvalidEvalException("'data_source_config' must be an object.", "data_source_config");
        var type = Json.String(config, "type", "data_source_config.type");
        if (type is "stored_completions" or "logs")
        {
            return StoredCompletionsConfig(type, config);
        }

        if (type != "custom")
        {
            throw new InvalidEvalException($"data_source_config type must be 'custom', 'logs' or 'stored_completions', not '{type}'.", "data_source_config.type");
        }

        var itemSchema = config["item_schema"];
        if (ItemSchema.Problem(itemSchema) is { } problem)
        {
            throw new InvalidEvalException($"'data_source_config.item_schema' {problem}.", "data_source_config.item_schema");
        }

        var includeSample = config["include_sample_schema"]?.GetValueKind() == JsonValueKind.True;
        var properties = new JsonObject { ["item"] = itemSchema!.DeepClone() };
        var required = new JsonArray("item");
        if (includeSample)
        {
            properties["sample"] = SampleSchema();
            required.Add("sample");
        }

        var resolved = new JsonObject
        {
            ["type"] = "custom",
            ["schema"] = new JsonObject { ["type"] = "object", ["properties"] = properties, ["required"] = required },
        };
        return (resolved, (JsonObject)itemSchema.DeepClone());
    }

    /// <summary>The graders, and the criteria as stored (as sent, each with its name).</summary>
    public static (IReadOnlyList<Grader> Graders, JsonArray Canonical) ReadTestingCriteria(string json)
    {
        if (Parse(json, "testing_criteria") is not JsonArray criteria || criteria.Count == 0)
        {
            throw new InvalidEvalException("'testing_criteria' must be a non-empty array of graders.", "testing_criteria");
        }

        if (criteria.Count > MaxCriteria)
        {
            throw new InvalidEvalException($"An eval has at most {MaxCriteria} testing criteria.", "testing_criteria");
        }

        var graders = new List<Grader>();
        for (var i = 0; i < criteria.Count; i++)
        {
            var param = $"testing_criteria[{i}]";
            var grader = ReadGrader(criteria[i] as JsonObject ?? throw new InvalidEvalException($"'{param}' must be an object.", param), param);
            if (graders.Any(other => other.Name == grader.Name))
            {
                throw new InvalidEvalException($"Testing criteria names must be unique; '{grader.Name}' is used twice.", $"{param}.name");
            }

            graders.Add(grader);
        }

        return (graders, (JsonArray)criteria.DeepClone());
    }

    /// <summary>The graders of an eval as stored.</summary>
    public static IReadOnlyList<Grader> Graders(Eval eval) => ReadTestingCriteria(eval.TestingCriteria).Graders;

    /// <summary>
    /// One grader; `param` names where it is (testing_criteria[i], or grader for the graders API). The graders API's
    /// text_similarity has no pass_threshold (it answers the reward, not a verdict), so it is required in evals only.
    /// </summary>
    public static Grader ReadGrader(JsonObject criterion, string param, bool passThresholdRequired = true)
    {
        var type = Json.String(criterion, "type", $"{param}.type");
        var name = Json.String(criterion, "name", $"{param}.name");
        switch (type)
        {
            case "string_check":
            {
                var operation = Json.String(criterion, "operation", $"{param}.operation");
                if (!StringCheckGrader.Operations.Contains(operation))
                {
                    throw new InvalidEvalException($"'operation' must be one of {string.Join(", ", StringCheckGrader.Operations)}.", $"{param}.operation");
                }

                return new StringCheckGrader(name, Template(criterion, "input", param), Template(criterion, "reference", param), operation);
            }

            case "text_similarity":
            {
                var metric = Json.String(criterion, "evaluation_metric", $"{param}.evaluation_metric");
                if (metric is "cosine" or "meteor")
                {
                    throw new InvalidEvalException(
                        $"evaluation_metric '{metric}' is not supported here ({(metric == "cosine" ? "it needs an embeddings model" : "it needs WordNet")}); use one of {string.Join(", ", TextSimilarityGrader.Metrics)}.",
                        $"{param}.evaluation_metric");
                }

                if (!TextSimilarityGrader.Metrics.Contains(metric))
                {
                    throw new InvalidEvalException($"'evaluation_metric' must be one of {string.Join(", ", TextSimilarityGrader.Metrics)}.", $"{param}.evaluation_metric");
                }

                var threshold = Json.Number(criterion, "pass_threshold", $"{param}.pass_threshold")
                    ?? (passThresholdRequired ? throw new InvalidEvalException("'pass_threshold' is required.", $"{param}.pass_threshold") : 1);
                return new TextSimilarityGrader(name, Template(criterion, "input", param), Template(criterion, "reference", param), metric, threshold);
            }

            case "label_model":
            {
                var labels = Strings(criterion, "labels", param);
                var passing = Strings(criterion, "passing_labels", param);
                if (passing.FirstOrDefault(label => !labels.Contains(label)) is { } stray)
                {
                    throw new InvalidEvalException($"Passing label '{stray}' is not one of the labels.", $"{param}.passing_labels");
                }

                return new LabelModelGrader(name, Json.String(criterion, "model", $"{param}.model"), Messages(criterion, param), labels, passing);
            }

            case "score_model":
            {
                double min = 0, max = 1;
                if (criterion["range"] is { } range)
                {
                    if (range is not JsonArray { Count: 2 } bounds || bounds.Any(bound => bound?.GetValueKind() != JsonValueKind.Number)
                        || bounds[0]!.GetValue<double>() >= bounds[1]!.GetValue<double>())
                    {
                        throw new InvalidEvalException("'range' must be [min, max] with min < max.", $"{param}.range");
                    }

                    (min, max) = (bounds[0]!.GetValue<double>(), bounds[1]!.GetValue<double>());
                }

                var threshold = Json.Number(criterion, "pass_threshold", $"{param}.pass_threshold") ?? (min + max) / 2;
                var sampling = criterion["sampling_params"] is JsonObject parameters
                    ? Sampling(parameters, $"{param}.sampling_params", "max_completions_tokens")
                    : SamplingParams.Default;
                return new ScoreModelGrader(name, Json.String(criterion, "model", $"{param}.model"), Messages(criterion, param), min, max, threshold, sampling);
            }

            case "python":
                throw new InvalidEvalException("Grader type 'python' is not supported: this platform does not run user code. Use string_check, text_similarity, label_model or score_model.", $"{param}.type");

            case "multi":
                throw new InvalidEvalException("Grader type 'multi' is not supported. Use string_check, text_similarity, label_model or score_model.", $"{param}.type");

            default:
                throw new InvalidEvalException($"Grader type '{type}' is not supported. Use string_check, text_similarity, label_model or score_model.", $"{param}.type");
        }
    }

    /// <summary>sampling_params: temperature, top_p, seed and the completion-token limit (named differently per object).</summary>
    public static SamplingParams Sampling(JsonObject parameters, string param, string maxTokensName)
    {
        var temperature = Json.Number(parameters, "temperature", $"{param}.temperature");
        if (temperature is < 0 or > 2)
        {
            throw new InvalidEvalException("'temperature' must be between 0 and 2.", $"{param}.temperature");
        }

        var topP = Json.Number(parameters, "top_p", $"{param}.top_p");
        if (topP is <= 0 or > 1)
        {
            throw new InvalidEvalException("'top_p' must be greater than 0 and at most 1.", $"{param}.top_p");
        }

        var maxTokens = Json.Number(parameters, maxTokensName, $"{param}.{maxTokensName}");
        if (maxTokens is { } limit && (limit < 1 || limit != Math.Floor(limit) || limit > 32_768))
        {
            throw new InvalidEvalException($"'{maxTokensName}' must be an integer from 1 to 32768.", $"{param}.{maxTokensName}");
        }

        var seed = Json.Number(parameters, "seed", $"{param}.seed");
        if (seed is { } value && value != Math.Floor(value))
        {
            throw new InvalidEvalException("'seed' must be an integer.", $"{param}.seed");
        }

        return new SamplingParams(temperature, topP, maxTokens is { } tokens ? (int)tokens : null, seed is { } s ? (long)s : null);
    }

    /// <summary>Chat messages given as templates: {role, content} or {type:"message", role, content}, the content a string or an input_text part.</summary>
    public static List<PromptMessage> Messages(JsonObject owner, string param, string field = "input")
    {
        if (owner[field] is not JsonArray messages || messages.Count == 0)
        {
            throw new InvalidEvalException($"'{field}' must be a non-empty array of messages.", $"{param}.{field}");
        }

        var result = new List<PromptMessage>();
        for (var i = 0; i < messages.Count; i++)
        {
            var at = $"{param}.{field}[{i}]";
            var message = messages[i] as JsonObject ?? throw new InvalidEvalException($"'{at}' must be a message object.", at);
            var role = Json.String(message, "role", $"{at}.role");
            if (role is not ("system" or "developer" or "user" or "assistant"))
            {
                throw new InvalidEvalException("'role' must be system, developer, user or assistant.", $"{at}.role");
            }

            var content = message["content"] switch
            {
                JsonValue text when text.GetValueKind() == JsonValueKind.String => text.GetValue<string>(),
                JsonObject { } part when part["text"]?.GetValueKind() == JsonValueKind.String => part["text"]!.GetValue<string>(),
                _ => throw new InvalidEvalException("'content' must be a string or an input_text part.", $"{at}.content"),
            };
            CheckReferences(content, $"{at}.content");
            result.Add(new PromptMessage(role == "developer" ? "system" : role, content));
        }

        return result;
    }

    private static string Template(JsonObject criterion, string field, string param)
    {
        var template = Json.String(criterion, field, $"{param}.{field}");
        CheckReferences(template, $"{param}.{field}");
        return template;
    }

    private static void CheckReferences(string template, string param)
    {
        if (ItemTemplate.UnknownReferences(template).FirstOrDefault() is { } unknown)
        {
            throw new InvalidEvalException($"Template variable '{{{{{unknown}}}}}' must start with 'item.' or 'sample.'.", param);
        }
    }

    private static List<string> Strings(JsonObject owner, string field, string param)
    {
        if (owner[field] is not JsonArray values || values.Count == 0 || values.Any(value => value?.GetValueKind() != JsonValueKind.String))
        {
            throw new InvalidEvalException($"'{field}' must be a non-empty array of strings.", $"{param}.{field}");
        }

        return values.Select(value => value!.GetValue<string>()).ToList();
    }

    private static JsonNode? Parse(string json, string param)
    {
        try
        {
            return JsonNode.Parse(json);
        }
        catch (JsonException)
        {
            throw new InvalidEvalException($"'{param}' is not valid JSON.", param);
        }
    }

    /// <summary>
    /// An eval over the project's stored chat completions (`logs`, or its older name `stored_completions`): every item
    /// is a completion's request ({"input": [messages]}) and comes with its stored answer as `sample`, as OpenAI
    /// describes these configs (`schema` has both). `metadata` is kept as given: it documents which traffic the eval is
    /// for; the filters that select items are the run's (data_source.source).
    /// </summary>
    private static (JsonObject DataSourceConfig, JsonObject ItemSchema) StoredCompletionsConfig(string type, JsonObject config)
    {
        var metadata = config["metadata"] switch
        {
            null => new JsonObject(),
            JsonObject pairs => (JsonObject)pairs.DeepClone(),
            _ => throw new InvalidEvalException("'metadata' must be an object.", "data_source_config.metadata"),
        };
        var itemSchema = new JsonObject
        {
            ["type"] = "object",
            ["properties"] = new JsonObject { ["input"] = new JsonObject { ["type"] = "array" } },
        };
        var resolved = new JsonObject
        {
            ["type"] = type,
            ["metadata"] = metadata,
            ["schema"] = new JsonObject
            {
                ["type"] = "object",
                ["properties"] = new JsonObject { ["item"] = itemSchema.DeepClone(), ["sample"] = SampleSchema() },
                ["required"] = new JsonArray("item", "sample"),
            },
        };
        return (resolved, itemSchema);
    }

    private static JsonObject SampleSchema() => new()
    {
        ["type"] = "object",
        ["properties"] = new JsonObject
        {
            ["model"] = new JsonObject { ["type"] = "string" },
            ["output_text"] = new JsonObject { ["type"] = "string" },
            ["output_json"] = new JsonObject { ["type"] = "object" },
            ["finish_reason"] = new JsonObject { ["type"] = "string" },
        },
        ["required"] = new JsonArray("model", "output_text", "finish_reason"),
    };
}

/// <summary>Typed reads of request JSON, failing with the field's path.</summary>
public static class Json
{
    public static string String(JsonObject owner, string field, string param) =>
        owner[field] is JsonValue value && value.GetValueKind() == JsonValueKind.String && value.GetValue<string>() is { Length: > 0 } text
            ? text
            : throw new InvalidEvalException($"'{field}' is required and must be a non-empty string.", param);

    public static string? OptionalString(JsonObject owner, string field, string param) => owner[field] switch
    {
        null => null,
        JsonValue value when value.GetValueKind() == JsonValueKind.String => value.GetValue<string>(),
        _ => throw new InvalidEvalException($"'{field}' must be a string.", param),
    };

    public static double? Number(JsonObject owner, string field, string param) => owner[field] switch
    {
        null => null,
        JsonValue value when value.GetValueKind() == JsonValueKind.Number => value.GetValue<double>(),
        _ => throw new InvalidEvalException($"'{field}' must be a number.", param),
    };
}
