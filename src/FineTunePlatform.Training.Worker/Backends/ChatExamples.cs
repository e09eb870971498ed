using System.Text;
using System.Text.Json;
using FineTunePlatform.LocalModels;

namespace FineTunePlatform.Training.Worker.Backends;

/// <summary>
/// Reads OpenAI chat (and DPO preference) fine-tuning JSONL into examples for the local trainer. Files reach a worker only after the
/// dataset service validated them, so this maps shapes rather than re-validating; text content parts are joined,
/// and assistant tool calls are kept as their JSON so the model still learns to produce them.
/// </summary>
public static class ChatExamples
{
    public static Task<List<SupervisedExample>> ReadAsync(Stream content, string param, CancellationToken cancellationToken) =>
        ReadLinesAsync(content, param, "chat example", root => new SupervisedExample([.. root.GetProperty("messages").EnumerateArray().Select(Turn)]), cancellationToken);

    /// <summary>DPO preference JSONL: {"input": {"messages": [...]}, "preferred_output": [...], "non_preferred_output": [...]}.</summary>
    public static Task<List<PreferenceExample>> ReadPreferencesAsync(Stream content, string param, CancellationToken cancellationToken) =>
        ReadLinesAsync(content, param, "preference example", root => new PreferenceExample(
            [.. root.GetProperty("input").GetProperty("messages").EnumerateArray().Select(Turn)],
            [.. root.GetProperty("preferred_output").EnumerateArray().Select(Turn)],
            [.. root.GetProperty("non_preferred_output").EnumerateArray().Select(Turn)]), cancellationToken);

    /// <summary>One example per non-blank line; a line that does not map fails the job naming the line and the file.</summary>
    private static async Task<List<T>> ReadLinesAsync<T>(Stream content, string param, string kind, Func<JsonElement, T> parse, CancellationToken cancellationToken)
    {
        var examples = new List<T>();
        using var reader = new StreamReader(content, new UTF8Encoding(false, true));
        var lineNumber = 0;
        while (await reader.ReadLineAsync(cancellationToken) is { } line)
        {
            lineNumber++;
            if (string.IsNullOrWhiteSpace(line))
            {
                continue;
            }

            try
            {
                using var document = JsonDocument.Parse(line);
                examples.Add(parse(document.RootElement));
            }
            catch (Exception ex) when (ex is JsonException or KeyNotFoundException or InvalidOperationException or ArgumentException)
            {
                throw new TrainingFailedException($"invalid_{param}", $"Line {lineNumber} of the {param.Replace('_', ' ')} is not a {kind}: {ex.Message}", param);
            }
        }

        return examples;
    }

    private static ChatTurn Turn(JsonElement message)
    {
        var role = message.GetProperty("role").GetString()!;
        ChatTokens.RoleToken(role); // throws ArgumentException for a role the model has no token for
        var content = message.TryGetProperty("content", out var value) ? Text(value) : "";
        if (message.TryGetProperty("tool_calls", out var toolCalls) && toolCalls.ValueKind == JsonValueKind.Array)
        {
            content += toolCalls.GetRawText();
        }

        double? weight = message.TryGetProperty("weight", out var w) && w.ValueKind == JsonValueKind.Number ? w.GetDouble() : null;
        return new ChatTurn(role, content, weight);
    }

    private static string Text(JsonElement content) => content.ValueKind switch
    {
        JsonValueKind.String => content.GetString()!,
        JsonValueKind.Array => string.Concat(content.EnumerateArray()
            .Where(part => part.TryGetProperty("text", out _))
            .Select(part => part.GetProperty("text").GetString())),
        _ => "",
    };
}
