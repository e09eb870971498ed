using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace FineTunePlatform.Evaluation.Graders;

/// <summary>
/// OpenAI's eval templates: `{{ item.field }}` and `{{ sample.output_text }}` (nested paths and array indices too,
/// `{{ item.messages.0.content }}`). A string value is inserted as is, any other JSON value as JSON, a missing one
/// as nothing.
/// </summary>
public static partial class ItemTemplate
{
    public const string ItemNamespace = "item";
    public const string SampleNamespace = "sample";

    [GeneratedRegex(@"\{\{\s*([^{}\s]+)\s*\}\}")]
    private static partial Regex Reference();

    public static string Render(string template, GradingInput input) =>
        Reference().Replace(template, match => Text(Resolve(match.Groups[1].Value, input)));

    /// <summary>The paths a template refers to that are outside `item` and `sample` (an eval with one is refused).</summary>
    public static IEnumerable<string> UnknownReferences(string template) =>
        Reference().Matches(template).Select(match => match.Groups[1].Value)
            .Where(path => !IsUnder(path, ItemNamespace) && !IsUnder(path, SampleNamespace));

    /// <summary>The value at `item.a.b` or `sample.output_text`, or null.</summary>
    public static JsonNode? Resolve(string path, GradingInput input)
    {
        var segments = path.Split('.');
        JsonNode? node = segments[0] switch
        {
            ItemNamespace => input.Item,
            SampleNamespace => input.Sample,
            _ => null,
        };
        foreach (var segment in segments.Skip(1))
        {
            node = node switch
            {
                JsonObject obj => obj.TryGetPropertyValue(segment, out var child) ? child : null,
                JsonArray array when int.TryParse(segment, NumberStyles.None, CultureInfo.InvariantCulture, out var index) && index < array.Count => array[index],
                _ => null,
            };
        }

        return node;
    }

    public static string Text(JsonNode? node) => node switch
    {
        null => "",
        JsonValue value when value.GetValueKind() == JsonValueKind.String => value.GetValue<string>(),
        _ => node.ToJsonString(),
    };

    private static bool IsUnder(string path, string root) =>
        path == root || path.StartsWith(root + ".", StringComparison.Ordinal);
}

/// <summary>What graders see of one item: the data-source item and the sample (output_text, output_json, ...).</summary>
public sealed record GradingInput(JsonNode? Item, JsonObject? Sample);
