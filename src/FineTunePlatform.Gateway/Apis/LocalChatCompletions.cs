using System.Text.Json;
using System.Text.Json.Nodes;
using FineTunePlatform.Gateway.Auth;
using FineTunePlatform.Gateway.Routing;
using FineTunePlatform.Gateway.Usage;
using FineTunePlatform.LocalModels;
using FineTunePlatform.ServiceDefaults;

namespace FineTunePlatform.Gateway.Apis;

/// <summary>
/// Answers a validated chat request with a model the gateway runs itself (the built-in runtime or the open-weights
/// one), in OpenAI's completion and chunk shapes.
/// </summary>
internal static class LocalChatCompletions
{
    /// <summary>`store` receives the whole completion once it has been answered (null: not stored).</summary>
    public static async Task RespondAsync(HttpContext context, JsonObject request, string model, IChatModel chatModel, KeyIdentity identity, UsageRecorder usage, TimeProvider time,
        Action<JsonObject>? store)
    {
        var messages = request["messages"]!.AsArray().Select(message => new ChatTurn(
            message!["role"]!.GetValue<string>(), ContentText(message["content"]))).ToList();
        var budget = request["max_completion_tokens"] ?? request["max_tokens"];
        var options = new SamplingOptions(
            Temperature: request["temperature"]?.GetValue<double>() ?? 1,
            TopP: request["top_p"]?.GetValue<double>() ?? 1,
            MaxTokens: budget?.GetValueKind() == JsonValueKind.Number ? budget.GetValue<int>() : 256,
            Seed: request["seed"]?.GetValueKind() == JsonValueKind.Number ? (int)request["seed"]!.GetValue<long>() : null);
        var stop = request["stop"] switch
        {
            JsonValue single when single.GetValueKind() == JsonValueKind.String => [single.GetValue<string>()],
            JsonArray many => many.Select(item => item!.GetValue<string>()).ToList(),
            _ => (IReadOnlyList<string>?)null,
        };
        var id = RandomIds.WithPrefix("chatcmpl-");
        var created = time.GetUtcNow().ToUnixTimeSeconds();
        var day = DateOnly.FromDateTime(time.GetUtcNow().UtcDateTime);

        if (request["stream"]?.GetValueKind() != JsonValueKind.True)
        {
            var result = await chatModel.CompleteAsync(messages, options, stop, context.RequestAborted);
            usage.Record(new UsageRecord(identity.ProjectId, identity.KeyId, model, day, result.PromptTokens, result.CompletionTokens));
            var completion = new JsonObject
            {
                ["id"] = id,
                ["object"] = "chat.completion",
                ["created"] = created,
                ["model"] = model,
                ["choices"] = new JsonArray(new JsonObject
                {
                    ["index"] = 0,
                    ["message"] = new JsonObject { ["role"] = "assistant", ["content"] = result.Text, ["refusal"] = null },
                    ["logprobs"] = null,
                    ["finish_reason"] = result.FinishReason,
                }),
                ["usage"] = Usage(result),
            };
            await context.Response.WriteAsJsonAsync(completion, context.RequestAborted);
            store?.Invoke(completion);
            return;
        }

        // Started before the response is: a request the model refuses is still answered as an error, not a broken stream.
        var pieces = chatModel.Start(messages, options, stop, context.RequestAborted);
        var includeUsage = request["stream_options"]?["include_usage"]?.GetValueKind() == JsonValueKind.True;
        context.Response.ContentType = "text/event-stream";
        context.Response.Headers.CacheControl = "no-cache";
        var assembler = store is null ? null : new StoredCompletions.ChatCompletionAssembler();
        async Task SendAsync(JsonObject chunk)
        {
            assembler?.Add(chunk);
            await context.Response.WriteAsync($"data: {chunk.ToJsonString()}\n\n", context.RequestAborted);
            await context.Response.Body.FlushAsync(context.RequestAborted);
        }

        JsonObject Chunk(JsonObject delta, string? finish) => new()
        {
            ["id"] = id,
            ["object"] = "chat.completion.chunk",
            ["created"] = created,
            ["model"] = model,
            ["choices"] = new JsonArray(new JsonObject { ["index"] = 0, ["delta"] = delta, ["logprobs"] = null, ["finish_reason"] = finish }),
        };

        await SendAsync(Chunk(new JsonObject { ["role"] = "assistant", ["content"] = "" }, null));
        GenerationResult? final = null;
        await foreach (var (delta, result) in pieces)
        {
            final = result ?? final;
            if (delta.Length > 0)
            {
                await SendAsync(Chunk(new JsonObject { ["content"] = delta }, null));
            }
        }

        await SendAsync(Chunk([], final!.FinishReason));
        usage.Record(new UsageRecord(identity.ProjectId, identity.KeyId, model, day, final.PromptTokens, final.CompletionTokens));
        if (includeUsage)
        {
            await SendAsync(new JsonObject
            {
                ["id"] = id,
                ["object"] = "chat.completion.chunk",
                ["created"] = created,
                ["model"] = model,
                ["choices"] = new JsonArray(),
                ["usage"] = Usage(final),
            });
        }

        await context.Response.WriteAsync("data: [DONE]\n\n", context.RequestAborted);
        if (assembler is not null)
        {
            // The stored completion has its usage whether or not the stream sent it.
            assembler.Add(new JsonObject { ["usage"] = Usage(final) });
            store!(assembler.Completion(id));
        }
    }

    private static JsonObject Usage(GenerationResult result) => new()
    {
        ["prompt_tokens"] = result.PromptTokens,
        ["completion_tokens"] = result.CompletionTokens,
        ["total_tokens"] = result.PromptTokens + result.CompletionTokens,
    };

    private static string ContentText(JsonNode? content) => content switch
    {
        JsonValue text when text.GetValueKind() == JsonValueKind.String => text.GetValue<string>(),
        JsonArray parts => string.Concat(parts.Select(part => part?["text"]?.GetValue<string>() ?? "")),
        _ => "",
    };
}
