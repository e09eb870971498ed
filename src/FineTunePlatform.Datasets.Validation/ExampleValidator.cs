using System.Text.Json;
using System.Text.Unicode;
using FineTunePlatform.LocalModels;

namespace FineTunePlatform.Datasets.Validation;

/// <summary>One problem on one line, with the JSON path of the field at fault.</summary>
/// <summary>
/// One mistake on one line. Path and message may quote the user's data; control characters in them are written as
/// \uXXXX escapes, so the error reads the same everywhere and is storable (PostgreSQL text cannot hold a NUL).
/// </summary>
public sealed record LineError(string Category, long Line, string Path, string Message)
{
    public string Path { get; } = Visible(Path);

    public string Message { get; } = Visible(Message);

    private static string Visible(string text) =>
        !text.Any(char.IsControl)
            ? text
            : string.Concat(text.Select(c => char.IsControl(c) ? $"\\u{(int)c:x4}" : c.ToString()));
}

/// <summary>What checking one line found: its format (when it is a valid example), its errors and its token counts.</summary>
public sealed class ExampleResult
{
    public string? Format { get; set; }

    public List<LineError> Errors { get; } = [];

    public int MessageCount { get; set; }

    public int TotalTokens { get; set; }

    public int AssistantTokens { get; set; }

    public bool MissingSystem { get; set; }

    public bool MissingUser { get; set; }

    /// <summary>How a valid chat example fits each built-in preset (<see cref="ModelPresets.All"/>, in order); null otherwise.</summary>
    public ExampleFit[]? ModelFits { get; set; }

    public bool IsValidExample => Format is not null && Errors.Count == 0;
}

/// <summary>
/// Checks one JSONL line against OpenAI's fine-tuning formats (chat, DPO preference, legacy prompt/completion) and
/// counts its tokens. Stateless and thread-safe: lines are checked in parallel.
/// </summary>
public sealed class ExampleValidator(TokenCounter tokens, int maxTokensPerExample)
{
    private static readonly HashSet<string> Roles = ["system", "user", "assistant", "tool", "function"];
    private static readonly HashSet<string> MessageKeys = ["role", "content", "name", "weight", "tool_calls", "tool_call_id", "function_call", "refusal"];

    public ExampleResult Validate(ReadOnlyMemory<byte> line, long lineNumber)
    {
        var result = new ExampleResult();
        void Error(string category, string path, string message) => result.Errors.Add(new LineError(category, lineNumber, path, message));

        if (!Utf8.IsValid(line.Span))
        {
            Error(ValidationCategories.InvalidUtf8, "$", "The line is not valid UTF-8.");
            return result;
        }

        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(line, new JsonDocumentOptions { MaxDepth = 64 });
        }
        catch (JsonException ex)
        {
            Error(ValidationCategories.InvalidJson, "$", $"The line is not valid JSON: {ex.Message}");
            return result;
        }

        using (document)
        {
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                Error(ValidationCategories.DataType, "$", $"Each line must be a JSON object, not {Describe(root.ValueKind)}.");
                return result;
            }

            if (root.TryGetProperty("messages", out _))
            {
                ValidateChat(root, result, Error);
            }
            else if (root.TryGetProperty("input", out _) || root.TryGetProperty("preferred_output", out _) || root.TryGetProperty("non_preferred_output", out _))
            {
                ValidatePreference(root, result, Error);
            }
            else if (root.TryGetProperty("prompt", out _) || root.TryGetProperty("completion", out _))
            {
                ValidateCompletion(root, result, Error);
            }
            else
            {
                Error(ValidationCategories.MissingMessagesList, "messages",
                    "The example has no 'messages' list (chat), no 'input'/'preferred_output'/'non_preferred_output' (preference) and no 'prompt'/'completion'.");
            }
        }

        if (result.Errors.Count == 0 && result.TotalTokens > maxTokensPerExample)
        {
            Error(ValidationCategories.ExampleTooLong, "$",
                $"The example has {result.TotalTokens} tokens, over the limit of {maxTokensPerExample}; it would be truncated in training.");
        }

        return result;
    }

    private void ValidateChat(JsonElement root, ExampleResult result, Action<string, string, string> error)
    {
        result.Format = DatasetFormats.Chat;
        var messages = root.GetProperty("messages");
        if (messages.ValueKind != JsonValueKind.Array)
        {
            error(ValidationCategories.MissingMessagesList, "messages", $"'messages' must be a list, not {Describe(messages.ValueKind)}.");
            return;
        }

        var counts = CheckMessages(messages, "messages", result, error, requireAssistant: true);
        foreach (var optionalList in (ReadOnlySpan<string>)["tools", "functions"])
        {
            if (root.TryGetProperty(optionalList, out var list))
            {
                if (list.ValueKind != JsonValueKind.Array)
                {
                    error(ValidationCategories.DataType, optionalList, $"'{optionalList}' must be a list, not {Describe(list.ValueKind)}.");
                }
                else
                {
                    // Tool definitions are prompt tokens too; counted from their JSON text.
                    counts.Total += tokens.Count(list.GetRawText());
                }
            }
        }

        if (root.TryGetProperty("parallel_tool_calls", out var parallel) && parallel.ValueKind is not (JsonValueKind.True or JsonValueKind.False))
        {
            error(ValidationCategories.DataType, "parallel_tool_calls", "'parallel_tool_calls' must be true or false.");
        }

        result.MessageCount = counts.Messages;
        result.TotalTokens = counts.Total + TokenCounter.TokensPerReplyPriming;
        result.AssistantTokens = counts.Assistant;
        result.MissingSystem = !counts.HasSystem;
        result.MissingUser = !counts.HasUser;
        if (result.Errors.Count == 0)
        {
            result.ModelFits = FitPresets(messages);
        }
    }

    /// <summary>
    /// The example as the built-in presets train on it (the messages mapped as the trainer maps them: text parts
    /// joined, tool calls as their JSON), rendered once per tokenizer and fitted to each preset's context.
    /// </summary>
    private static ExampleFit[] FitPresets(JsonElement messages)
    {
        var turns = messages.EnumerateArray().Select(message =>
        {
            var content = ContentText(message) ?? "";
            if (message.TryGetProperty("tool_calls", out var calls) && calls.ValueKind == JsonValueKind.Array)
            {
                content += calls.GetRawText();
            }

            double? weight = message.TryGetProperty("weight", out var w) && w.ValueKind == JsonValueKind.Number ? w.GetDouble() : null;
            return new ChatTurn(message.GetProperty("role").GetString()!, content, weight);
        }).ToList();
        var rendered = new Dictionary<ChatTokenizer, (int[], float[])>();
        return ModelPresets.All.Select(preset =>
        {
            if (!rendered.TryGetValue(preset.Tokenizer, out var tokens))
            {
                rendered[preset.Tokenizer] = tokens = preset.Tokenizer.Render(turns);
            }

            return ContextWindow.Check(tokens, preset.ContextLength);
        }).ToArray();
    }

    private void ValidatePreference(JsonElement root, ExampleResult result, Action<string, string, string> error)
    {
        result.Format = DatasetFormats.Preference;
        var total = 0;
        var assistant = 0;
        var messageCount = 0;
        MessageCounts? inputCounts = null;
        if (!root.TryGetProperty("input", out var input) || input.ValueKind != JsonValueKind.Object
            || !input.TryGetProperty("messages", out var inputMessages) || inputMessages.ValueKind != JsonValueKind.Array)
        {
            error(ValidationCategories.MissingInput, "input.messages", "A preference example needs 'input' with a 'messages' list.");
        }
        else
        {
            inputCounts = CheckMessages(inputMessages, "input.messages", result, error, requireAssistant: false);
            total += inputCounts.Total;
            messageCount += inputCounts.Messages;
        }

        foreach (var (side, category) in (ReadOnlySpan<(string, string)>)[("preferred_output", ValidationCategories.MissingPreferredOutput), ("non_preferred_output", ValidationCategories.MissingNonPreferredOutput)])
        {
            if (!root.TryGetProperty(side, out var output) || output.ValueKind != JsonValueKind.Array || output.GetArrayLength() == 0)
            {
                error(category, side, $"A preference example needs '{side}': a list holding the assistant's reply.");
                continue;
            }

            var counts = CheckMessages(output, side, result, error, requireAssistant: true);
            total += counts.Total;
            assistant += counts.Assistant;
            messageCount += counts.Messages;
        }

        result.MessageCount = messageCount;
        result.TotalTokens = total + TokenCounter.TokensPerReplyPriming;
        result.AssistantTokens = assistant;
        result.MissingSystem = inputCounts is { HasSystem: false };
        result.MissingUser = inputCounts is { HasUser: false };
    }

    private void ValidateCompletion(JsonElement root, ExampleResult result, Action<string, string, string> error)
    {
        result.Format = DatasetFormats.Completion;
        foreach (var key in (ReadOnlySpan<string>)["prompt", "completion"])
        {
            if (!root.TryGetProperty(key, out var value) || value.ValueKind != JsonValueKind.String)
            {
                error(ValidationCategories.InvalidPromptCompletion, key, $"A prompt/completion example needs '{key}' as a string.");
            }
        }

        if (result.Errors.Count > 0)
        {
            return;
        }

        var completion = tokens.Count(root.GetProperty("completion").GetString()!);
        result.MessageCount = 2;
        result.TotalTokens = tokens.Count(root.GetProperty("prompt").GetString()!) + completion;
        result.AssistantTokens = completion;
        result.MissingSystem = true;
    }

    private sealed class MessageCounts
    {
        public int Messages { get; set; }

        public int Total { get; set; }

        public int Assistant { get; set; }

        public bool HasSystem { get; set; }

        public bool HasUser { get; set; }
    }

    private MessageCounts CheckMessages(JsonElement messages, string listPath, ExampleResult result, Action<string, string, string> error, bool requireAssistant)
    {
        var counts = new MessageCounts();
        var hasAssistant = false;
        var index = 0;
        foreach (var message in messages.EnumerateArray())
        {
            var path = $"{listPath}[{index++}]";
            counts.Messages++;
            if (message.ValueKind != JsonValueKind.Object)
            {
                error(ValidationCategories.DataType, path, $"Each message must be an object, not {Describe(message.ValueKind)}.");
                continue;
            }

            foreach (var property in message.EnumerateObject())
            {
                if (!MessageKeys.Contains(property.Name))
                {
                    error(ValidationCategories.MessageUnrecognizedKey, $"{path}.{property.Name}", $"Unrecognised key '{property.Name}' in a message.");
                }
            }

            if (!message.TryGetProperty("role", out var roleElement))
            {
                error(ValidationCategories.MessageMissingKey, $"{path}.role", "The message has no 'role'.");
                continue;
            }

            var role = roleElement.ValueKind == JsonValueKind.String ? roleElement.GetString()! : null;
            if (role is null || !Roles.Contains(role))
            {
                error(ValidationCategories.UnrecognizedRole, $"{path}.role",
                    $"Unrecognised role {(role is null ? roleElement.GetRawText() : $"'{role}'")}; expected one of system, user, assistant, tool, function.");
                continue;
            }

            var hasCall = message.TryGetProperty("tool_calls", out _) || message.TryGetProperty("function_call", out _);
            var content = ContentText(message);
            if (content is null && !(role == "assistant" && hasCall))
            {
                error(ValidationCategories.MissingContent, $"{path}.content", $"The {role} message has no content.");
            }

            if (message.TryGetProperty("weight", out var weight))
            {
                if (role != "assistant")
                {
                    error(ValidationCategories.InvalidWeight, $"{path}.weight", "'weight' is only allowed on assistant messages.");
                }
                else if (weight.ValueKind != JsonValueKind.Number || !weight.TryGetDouble(out var value) || (value != 0 && value != 1))
                {
                    error(ValidationCategories.InvalidWeight, $"{path}.weight", "'weight' must be 0 or 1.");
                }
            }

            var messageTokens = TokenCounter.TokensPerMessage + tokens.CountRole(role) + (content is null ? 0 : tokens.Count(content));
            if (message.TryGetProperty("name", out var name) && name.ValueKind == JsonValueKind.String)
            {
                messageTokens += TokenCounter.TokensPerName + tokens.Count(name.GetString()!);
            }

            if (hasCall)
            {
                messageTokens += tokens.Count((message.TryGetProperty("tool_calls", out var calls) ? calls : message.GetProperty("function_call")).GetRawText());
            }

            counts.Total += messageTokens;
            switch (role)
            {
                case "assistant":
                    hasAssistant = true;
                    if (!(message.TryGetProperty("weight", out var w) && w.ValueKind == JsonValueKind.Number && w.TryGetDouble(out var wv) && wv == 0))
                    {
                        counts.Assistant += messageTokens - TokenCounter.TokensPerMessage;
                    }

                    break;
                case "system":
                    counts.HasSystem = true;
                    break;
                case "user":
                    counts.HasUser = true;
                    break;
            }
        }

        if (requireAssistant && !hasAssistant && result.Errors.Count == 0)
        {
            error(ValidationCategories.ExampleMissingAssistantMessage, listPath, "The example has no assistant message to learn from.");
        }

        return counts;
    }

    /// <summary>A message's text: a string, or the text parts of a content array; null when absent or empty.</summary>
    private static string? ContentText(JsonElement message)
    {
        if (!message.TryGetProperty("content", out var content))
        {
            return null;
        }

        switch (content.ValueKind)
        {
            case JsonValueKind.String:
                var text = content.GetString();
                return string.IsNullOrEmpty(text) ? null : text;
            case JsonValueKind.Array:
                var parts = new List<string>();
                foreach (var part in content.EnumerateArray())
                {
                    if (part.ValueKind == JsonValueKind.Object && part.TryGetProperty("text", out var partText) && partText.ValueKind == JsonValueKind.String)
                    {
                        parts.Add(partText.GetString()!);
                    }
                }

                return parts.Count == 0 ? null : string.Concat(parts);
            default:
                return null;
        }
    }

    private static string Describe(JsonValueKind kind) => kind switch
    {
        JsonValueKind.Array => "a list",
        JsonValueKind.String => "a string",
        JsonValueKind.Number => "a number",
        JsonValueKind.True or JsonValueKind.False => "a boolean",
        JsonValueKind.Null => "null",
        _ => "an object",
    };
}
