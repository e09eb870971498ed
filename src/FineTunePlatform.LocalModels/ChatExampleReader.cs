using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json;

namespace FineTunePlatform.LocalModels;

/// <summary>
/// Reads OpenAI chat (and DPO preference) fine-tuning JSONL into examples, one per non-blank line, with its line
/// number. Files reach a trainer only after the dataset service validated them, so this maps shapes rather than
/// re-validating; text content parts are joined, and assistant tool calls are kept as their JSON so a model still
/// learns to produce them. The worker trains on what this reads and the training service estimates a job's tokens
/// from it, so both see the same examples.
/// </summary>
public static class ChatExampleReader
{
    public static IAsyncEnumerable<(long Line, SupervisedExample Example)> ReadChatAsync(Stream content, CancellationToken cancellationToken) =>
        ReadLinesAsync(content, "chat example", root => new SupervisedExample([.. root.GetProperty("messages").EnumerateArray().Select(Turn)]), cancellationToken);

    /// <summary>DPO preference JSONL: {"input": {"messages": [...]}, "preferred_output": [...], "non_preferred_output": [...]}.</summary>
    public static IAsyncEnumerable<(long Line, PreferenceExample Example)> ReadPreferencesAsync(Stream content, CancellationToken cancellationToken) =>
        ReadLinesAsync(content, "preference example", root => new PreferenceExample(
            [.. root.GetProperty("input").GetProperty("messages").EnumerateArray().Select(Turn)],
            [.. root.GetProperty("preferred_output").EnumerateArray().Select(Turn)],
            [.. root.GetProperty("non_preferred_output").EnumerateArray().Select(Turn)]), cancellationToken);

    private static async IAsyncEnumerable<(long Line, T Example)> ReadLinesAsync<T>(
        Stream content, string kind, Func<JsonElement, T> parse, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        using var reader = new StreamReader(content, new UTF8Encoding(false, true));
        long lineNumber = 0;
        while (await reader.ReadLineAsync(cancellationToken) is { } line)
        {
            lineNumber++;
            if (string.IsNullOrWhiteSpace(line))
            {
                continue;
            }

            T example;
            try
            {
                using var document = JsonDocument.Parse(line);
                example = parse(document.RootElement);
            }
            catch (Exception ex) when (ex is JsonException or KeyNotFoundException or InvalidOperationException or ArgumentException)
            {
                throw new InvalidExampleException(lineNumber, $"Line {lineNumber} is not a {kind}: {ex.Message}");
            }

            yield return (lineNumber, example);
        }
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

/// <summary>A line of a training file that does not map to an example (the message names the line).</summary>
public sealed class InvalidExampleException(long line, string message) : Exception(message)
{
    public long Line { get; } = line;
}
