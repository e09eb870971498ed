using System.Text.Json;
using System.Text.Json.Nodes;

namespace FineTunePlatform.Evaluation.Evals;

/// <summary>
/// Checks items against an eval's item schema: the JSON Schema keywords item schemas use in practice (type, with a
/// list of types allowed; properties; required; items; enum), recursively. Other keywords are accepted and ignored.
/// </summary>
public static class ItemSchema
{
    private static readonly string[] Types = ["string", "number", "integer", "boolean", "object", "array", "null"];

    /// <summary>Why `schema` is not a usable item schema, or null.</summary>
    public static string? Problem(JsonNode? schema)
    {
        if (schema is not JsonObject obj)
        {
            return "must be a JSON Schema object";
        }

        if (obj["type"] is { } type)
        {
            var names = type is JsonArray list ? list.Select(name => name?.GetValueKind() == JsonValueKind.String ? name.GetValue<string>() : "") : [type.GetValueKind() == JsonValueKind.String ? type.GetValue<string>() : ""];
            if (names.FirstOrDefault(name => !Types.Contains(name)) is { } unknown)
            {
                return $"has an unknown type '{unknown}'";
            }
        }

        if (obj["properties"] is JsonObject properties)
        {
            foreach (var (name, property) in properties)
            {
                if (Problem(property) is { } problem)
                {
                    return $"property '{name}' {problem}";
                }
            }
        }

        return obj["items"] is { } items ? Problem(items) : null;
    }

    /// <summary>Where and why `value` does not match `schema`, or null when it does.</summary>
    public static string? Mismatch(JsonNode? value, JsonNode? schema, string path = "item")
    {
        if (schema is not JsonObject obj)
        {
            return null;
        }

        if (obj["type"] is { } type)
        {
            var allowed = type is JsonArray list ? list.Select(name => name!.GetValue<string>()).ToList() : [type.GetValue<string>()];
            var actual = TypeOf(value);
            if (!allowed.Contains(actual) && !(actual == "integer" && allowed.Contains("number")))
            {
                return $"{path} must be {string.Join(" or ", allowed)}, not {actual}";
            }
        }

        if (obj["enum"] is JsonArray options && !options.Any(option => JsonNode.DeepEquals(option, value)))
        {
            return $"{path} must be one of {options.ToJsonString()}";
        }

        if (value is JsonObject item)
        {
            foreach (var required in obj["required"] as JsonArray ?? [])
            {
                var name = required?.GetValue<string>() ?? "";
                if (!item.ContainsKey(name))
                {
                    return $"{path}.{name} is required";
                }
            }

            if (obj["properties"] is JsonObject properties)
            {
                foreach (var (name, property) in properties)
                {
                    if (item.TryGetPropertyValue(name, out var child) && Mismatch(child, property, $"{path}.{name}") is { } problem)
                    {
                        return problem;
                    }
                }
            }
        }

        if (value is JsonArray array && obj["items"] is { } itemSchema)
        {
            for (var i = 0; i < array.Count; i++)
            {
                if (Mismatch(array[i], itemSchema, $"{path}[{i}]") is { } problem)
                {
                    return problem;
                }
            }
        }

        return null;
    }

    private static string TypeOf(JsonNode? value) => value?.GetValueKind() switch
    {
        null or JsonValueKind.Null => "null",
        JsonValueKind.String => "string",
        JsonValueKind.True or JsonValueKind.False => "boolean",
        JsonValueKind.Object => "object",
        JsonValueKind.Array => "array",
        _ => value.AsValue().TryGetValue<long>(out _) ? "integer" : "number",
    };
}
