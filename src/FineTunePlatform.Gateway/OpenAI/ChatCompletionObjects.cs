using System.Text.Json;
using System.Text.Json.Nodes;
using FineTunePlatform.Gateway.StoredCompletions;

namespace FineTunePlatform.Gateway.OpenAI;

/// <summary>OpenAI's stored-completion shapes: the completion as returned (with its metadata), its messages, a deletion.</summary>
public static class ChatCompletionObjects
{
    /// <summary>The `chat.completion` object as first returned, with its current `metadata` and the `request_id` it was answered under.</summary>
    public static JsonObject Completion(StoredCompletion stored)
    {
        var completion = JsonNode.Parse(stored.Completion)!.AsObject();
        completion["metadata"] = JsonNode.Parse(stored.Metadata);
        completion["request_id"] = stored.RequestId;
        return completion;
    }

    public static JsonObject Deleted(string completionId) => new()
    {
        ["object"] = "chat.completion.deleted",
        ["id"] = completionId,
        ["deleted"] = true,
    };

    /// <summary>
    /// The request's messages as OpenAI lists them: each with an id (`{completion id}-{index}`), its role, its text as
    /// `content`, and `content_parts` when it was sent as parts (else null).
    /// </summary>
    public static List<JsonObject> Messages(StoredCompletion stored) =>
        JsonNode.Parse(stored.InputMessages)!.AsArray().Select((node, index) =>
        {
            var message = node!.AsObject();
            var content = message["content"];
            var listed = new JsonObject
            {
                ["id"] = $"{stored.Id}-{index}",
                ["role"] = message["role"]?.DeepClone(),
                ["content"] = content is null ? null : MessageText(content),
                ["refusal"] = message["refusal"]?.DeepClone(),
                ["content_parts"] = content is JsonArray parts ? parts.DeepClone() : null,
            };
            foreach (var optional in (ReadOnlySpan<string>)["name", "tool_calls", "tool_call_id"])
            {
                if (message[optional] is { } value)
                {
                    listed[optional] = value.DeepClone();
                }
            }

            return listed;
        }).ToList();

    /// <summary>A message's content as one string: the text itself, or its text parts joined.</summary>
    public static string MessageText(JsonNode content) => content switch
    {
        JsonValue text when text.GetValueKind() == JsonValueKind.String => text.GetValue<string>(),
        JsonArray parts => string.Concat(parts.Select(part => part?["type"]?.GetValue<string>() == "text" ? part["text"]?.GetValue<string>() : null)),
        _ => content.ToJsonString(),
    };
}
