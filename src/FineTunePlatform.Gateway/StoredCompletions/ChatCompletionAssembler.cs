using System.Text;
using System.Text.Json.Nodes;

namespace FineTunePlatform.Gateway.StoredCompletions;

/// <summary>
/// Builds the `chat.completion` object a stream amounts to from its `chat.completion.chunk`s, so a streamed
/// completion is stored in the same shape as one answered at once: per choice the role, the concatenated content
/// and refusal, tool calls joined by index, the last finish reason; the usage chunk's counts.
/// </summary>
public sealed class ChatCompletionAssembler
{
    private readonly SortedDictionary<int, Choice> _choices = [];
    private JsonObject? _first;
    private JsonNode? _usage;

    public void Add(JsonObject chunk)
    {
        _first ??= chunk;
        if (chunk["usage"] is JsonObject usage)
        {
            _usage = usage.DeepClone();
        }

        if (chunk["choices"] is not JsonArray choices)
        {
            return;
        }

        foreach (var node in choices)
        {
            if (node is not JsonObject choice)
            {
                continue;
            }

            var index = Index(choice);
            if (!_choices.TryGetValue(index, out var assembled))
            {
                _choices[index] = assembled = new Choice();
            }

            assembled.Add(choice);
        }
    }

    /// <summary>The whole completion under `id` (the one its chunks were sent with).</summary>
    public JsonObject Completion(string id) => new()
    {
        ["id"] = id,
        ["object"] = "chat.completion",
        ["created"] = _first?["created"]?.DeepClone(),
        ["model"] = _first?["model"]?.DeepClone(),
        ["choices"] = new JsonArray([.. _choices.Select(pair => (JsonNode)pair.Value.ToJson(pair.Key))]),
        ["usage"] = _usage?.DeepClone(),
        ["system_fingerprint"] = _first?["system_fingerprint"]?.DeepClone(),
    };

    /// <summary>Read leniently: a provider's odd chunk must not break the stream it is relayed in.</summary>
    private static string? Text(JsonNode? node) => node is JsonValue value && value.TryGetValue<string>(out var text) ? text : null;

    private static int Index(JsonObject owner) => owner["index"] is JsonValue value && value.TryGetValue<int>(out var index) ? index : 0;

    private sealed class Choice
    {
        private readonly StringBuilder _content = new();
        private readonly SortedDictionary<int, (JsonObject Call, StringBuilder Arguments)> _toolCalls = [];
        private StringBuilder? _refusal;
        private string _role = "assistant";
        private bool _sawContent;
        private JsonNode? _finishReason;

        public void Add(JsonObject choice)
        {
            if (choice["finish_reason"] is { } finish)
            {
                _finishReason = finish.DeepClone();
            }

            if (choice["delta"] is not JsonObject delta)
            {
                return;
            }

            if (Text(delta["role"]) is { } role)
            {
                _role = role;
            }

            if (Text(delta["content"]) is { } content)
            {
                _sawContent = true;
                _content.Append(content);
            }

            if (Text(delta["refusal"]) is { } refusal)
            {
                (_refusal ??= new StringBuilder()).Append(refusal);
            }

            if (delta["tool_calls"] is JsonArray calls)
            {
                foreach (var call in calls.OfType<JsonObject>())
                {
                    var index = Index(call);
                    if (!_toolCalls.TryGetValue(index, out var assembled))
                    {
                        assembled = (new JsonObject { ["id"] = call["id"]?.DeepClone(), ["type"] = call["type"]?.DeepClone() ?? "function",
                            ["function"] = new JsonObject { ["name"] = call["function"]?["name"]?.DeepClone() } }, new StringBuilder());
                        _toolCalls[index] = assembled;
                    }

                    assembled.Arguments.Append(Text(call["function"]?["arguments"]));
                }
            }
        }

        public JsonObject ToJson(int index)
        {
            var message = new JsonObject
            {
                ["role"] = _role,
                ["content"] = _sawContent || _toolCalls.Count == 0 ? _content.ToString() : null,
                ["refusal"] = _refusal?.ToString(),
            };
            if (_toolCalls.Count > 0)
            {
                message["tool_calls"] = new JsonArray([.. _toolCalls.Values.Select(call =>
                {
                    var json = (JsonObject)call.Call.DeepClone();
                    json["function"]!["arguments"] = call.Arguments.ToString();
                    return (JsonNode)json;
                })]);
            }

            return new JsonObject { ["index"] = index, ["message"] = message, ["logprobs"] = null, ["finish_reason"] = _finishReason };
        }
    }
}
