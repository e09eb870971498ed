using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using FineTunePlatform.Gateway.Auth;
using FineTunePlatform.Gateway.OpenAI;
using FineTunePlatform.Gateway.RateLimiting;
using FineTunePlatform.Gateway.Routing;
using FineTunePlatform.Gateway.StoredCompletions;
using FineTunePlatform.Gateway.Usage;
using FineTunePlatform.ServiceDefaults;

namespace FineTunePlatform.Gateway.Apis;

/// <summary>
/// POST /v1/chat/completions: validates the request, admits it against the rate limits, routes it by model and
/// streams the answer back chunk by chunk, recording usage without waiting on it. With `store: true` the completion
/// is handed to <see cref="StoredCompletionWriter"/> once answered (see StoredCompletionsApi for reading it back).
/// </summary>
public static class ChatApi
{
    public static RouteHandlerBuilder MapChatApi(this IEndpointRouteBuilder app) =>
        app.MapPost("/v1/chat/completions", CompleteChatAsync).RequireAuthorization(Policies.Reader);

    private static async Task CompleteChatAsync(HttpContext context, ModelRouter router, ChatModels chatModels, RequestRateLimiter limiter, UsageRecorder usage, UpstreamChatClient upstreamClient,
        StoredCompletionWriter storedCompletions, TimeProvider time)
    {
        var (request, problem) = await ReadRequestAsync(context.Request);
        if (problem is not null)
        {
            await problem.ExecuteAsync(context);
            return;
        }

        var storage = ChatStorage.Read(request!);

        var model = request!["model"]!.GetValue<string>();
        var route = router.Find(model);
        var served = route is null ? await chatModels.ResolveAsync(model, context.GetCaller(), forEvaluation: false, context.RequestAborted) : null;
        if (route is null && served is null)
        {
            await ModelNotFound(model).ExecuteAsync(context);
            return;
        }

        var identity = context.Features.Get<KeyIdentity>()!;
        var decision = await limiter.AdmitAsync(identity, EstimateTokens(request));
        RateLimitHeaders.Apply(context.Response, decision);
        if (!decision.Allowed)
        {
            await RateLimitHeaders.Refusal(decision).ExecuteAsync(context);
            return;
        }

        var requestId = ResponseHeaders.RequestIdOf(context);
        Action<JsonObject>? store = storage.Store
            ? completion => storedCompletions.Store(identity.ProjectId, () => storage.ToRow(identity.ProjectId, model, requestId, request, completion))
            : null;
        if (route is null)
        {
            await LocalChatCompletions.RespondAsync(context, request, model, served!, identity, usage, time, store);
            return;
        }

        // The gateway is where a project's completions are stored: the provider is not asked to keep them too, and
        // a stored completion carries the gateway's own id (a provider's ids are its own, and need not be unique).
        var storedId = store is null ? null : RandomIds.WithPrefix("chatcmpl-");
        request.Remove("store");
        request.Remove("metadata");

        var streaming = request["stream"]?.GetValueKind() == JsonValueKind.True;
        var clientWantsUsage = request["stream_options"]?["include_usage"]?.GetValueKind() == JsonValueKind.True;
        if (streaming)
        {
            // Always ask the provider for usage so it can be recorded; the extra chunk is withheld unless asked for.
            request["stream_options"] = new JsonObject { ["include_usage"] = true };
        }

        HttpResponseMessage response;
        try
        {
            response = await upstreamClient.SendAsync(route, request, context.RequestAborted);
        }
        catch (HttpRequestException)
        {
            await UpstreamUnavailable(model).ExecuteAsync(context);
            return;
        }

        using (response)
        {
            context.Response.StatusCode = (int)response.StatusCode;
            context.Response.ContentType = response.Content.Headers.ContentType?.ToString() ?? "application/json";
            var day = DateOnly.FromDateTime(time.GetUtcNow().UtcDateTime);
            void Record(JsonNode? usageNode)
            {
                if (usageNode is JsonObject counts && response.IsSuccessStatusCode)
                {
                    usage.Record(new UsageRecord(identity.ProjectId, identity.KeyId, model, day,
                        counts["prompt_tokens"]?.GetValue<long>() ?? 0, counts["completion_tokens"]?.GetValue<long>() ?? 0));
                }
            }

            if (streaming && response.IsSuccessStatusCode)
            {
                var assembler = store is null ? null : new ChatCompletionAssembler();
                await RelayEventStreamAsync(response, context, clientWantsUsage, Record, storedId, assembler);
                store?.Invoke(assembler!.Completion(storedId!));
            }
            else
            {
                var body = await response.Content.ReadAsStringAsync(context.RequestAborted);
                JsonObject? completion = null;
                if (response.IsSuccessStatusCode)
                {
                    completion = JsonNode.Parse(body) as JsonObject;
                    Record(completion?["usage"]);
                    if (store is not null && completion is not null)
                    {
                        completion["id"] = storedId;
                        body = completion.ToJsonString();
                    }
                }

                await context.Response.WriteAsync(body, context.RequestAborted);
                if (store is not null && completion is not null)
                {
                    store(completion);
                }
            }
        }
    }

    /// <summary>
    /// Passes server-sent events through one by one, flushing each as it arrives. A stored stream (`assembler` set)
    /// has every chunk read into the assembler and sent under the stored id.
    /// </summary>
    private static async Task RelayEventStreamAsync(HttpResponseMessage response, HttpContext context, bool clientWantsUsage, Action<JsonNode?> record,
        string? storedId, ChatCompletionAssembler? assembler)
    {
        context.Response.Headers.CacheControl = "no-cache";
        await using var stream = await response.Content.ReadAsStreamAsync(context.RequestAborted);
        using var reader = new StreamReader(stream, Encoding.UTF8);
        var withholding = false;
        while (await reader.ReadLineAsync(context.RequestAborted) is { } line)
        {
            if (line.Length == 0)
            {
                if (!withholding)
                {
                    await context.Response.WriteAsync("\n", context.RequestAborted);
                    await context.Response.Body.FlushAsync(context.RequestAborted);
                }

                withholding = false;
                continue;
            }

            if (assembler is not null && line.StartsWith("data: {", StringComparison.Ordinal) && ParseChunk(line) is { } stored)
            {
                stored["id"] = storedId;
                assembler.Add(stored);
                line = "data: " + stored.ToJsonString();
            }

            if (line.StartsWith("data: {", StringComparison.Ordinal) && line.Contains("\"usage\":{", StringComparison.Ordinal))
            {
                var chunk = JsonNode.Parse(line.AsSpan(6).ToString());
                record(chunk?["usage"]);
                withholding = !clientWantsUsage && chunk?["choices"] is JsonArray { Count: 0 };
            }

            if (!withholding)
            {
                await context.Response.WriteAsync(line + "\n", context.RequestAborted);
            }
        }
    }

    /// <summary>A provider's chunk as JSON, or null for one that is not (relayed as it came, and missing from the stored completion).</summary>
    private static JsonObject? ParseChunk(string line)
    {
        try
        {
            return JsonNode.Parse(line.AsSpan(6).ToString()) as JsonObject;
        }
        catch (JsonException)
        {
            return null;
        }
    }

    private static async Task<(JsonObject? Request, IResult? Problem)> ReadRequestAsync(HttpRequest httpRequest)
    {
        var request = await RequestBody.ReadNodeAsync(httpRequest, httpRequest.HttpContext.RequestAborted);

        if (request["model"] is not JsonValue modelValue || modelValue.GetValueKind() != JsonValueKind.String || string.IsNullOrEmpty(modelValue.GetValue<string>()))
        {
            return (null, OpenAIErrors.BadRequest("you must provide a model parameter", "model"));
        }

        if (request["messages"] is not JsonArray { Count: > 0 } messages)
        {
            return (null, OpenAIErrors.BadRequest("'messages' must be a non-empty array.", "messages"));
        }

        for (var i = 0; i < messages.Count; i++)
        {
            if (messages[i] is not JsonObject message || message["role"]?.GetValueKind() != JsonValueKind.String)
            {
                return (null, OpenAIErrors.BadRequest($"Invalid message at messages[{i}]: each message needs a 'role'.", $"messages[{i}].role"));
            }

            var role = message["role"]!.GetValue<string>();
            if (!MessageRoles.Contains(role))
            {
                return (null, OpenAIErrors.BadRequest($"Invalid value '{role}' for messages[{i}].role: expected one of {string.Join(", ", MessageRoles)}.", $"messages[{i}].role"));
            }

            // Text, or a list of content parts; only an assistant message (one that called tools) may have none.
            var content = message["content"];
            var wellFormedParts = content is not JsonArray parts || parts.All(part => part is JsonObject { } candidate
                && candidate["type"]?.GetValueKind() == JsonValueKind.String
                && (candidate["type"]!.GetValue<string>() != "text" || candidate["text"]?.GetValueKind() == JsonValueKind.String));
            if (!(content?.GetValueKind() is JsonValueKind.String or JsonValueKind.Array || (content is null && role == "assistant")) || !wellFormedParts)
            {
                return (null, OpenAIErrors.BadRequest($"Invalid value for messages[{i}].content: expected a string or an array of content parts.", $"messages[{i}].content"));
            }
        }

        foreach (var name in (ReadOnlySpan<string>)["max_tokens", "max_completion_tokens"])
        {
            if (request[name] is JsonValue budget && !(budget.GetValueKind() == JsonValueKind.Number && budget.TryGetValue<int>(out var tokens) && tokens >= 1))
            {
                return (null, OpenAIErrors.BadRequest($"'{name}' must be a positive integer.", name));
            }
        }

        if (request["seed"] is JsonValue seed && !(seed.GetValueKind() == JsonValueKind.Number && seed.TryGetValue<long>(out _)))
        {
            return (null, OpenAIErrors.BadRequest("'seed' must be an integer.", "seed"));
        }

        if (request["stop"] is { } stop && !(stop.GetValueKind() == JsonValueKind.String
            || (stop is JsonArray stops && stops.Count <= 4 && stops.All(item => item?.GetValueKind() == JsonValueKind.String))))
        {
            return (null, OpenAIErrors.BadRequest("'stop' must be a string or an array of up to 4 strings.", "stop"));
        }

        if (request["n"] is JsonValue n && (n.GetValueKind() != JsonValueKind.Number || n.GetValue<double>() != 1))
        {
            return (null, OpenAIErrors.BadRequest("Only n=1 is supported.", "n"));
        }

        foreach (var (name, min, max) in (ReadOnlySpan<(string, double, double)>)[("temperature", 0, 2), ("top_p", 0, 1)])
        {
            if (request[name] is JsonValue value && (value.GetValueKind() != JsonValueKind.Number || value.GetValue<double>() < min || value.GetValue<double>() > max))
            {
                return (null, OpenAIErrors.BadRequest($"'{name}' must be a number between {min} and {max}.", name));
            }
        }

        return (request, null);
    }

    private static readonly string[] MessageRoles = ["system", "developer", "user", "assistant", "tool", "function"];

    /// <summary>What a request may cost against tokens-per-minute: its prompt (about 4 characters a token) plus its completion budget.</summary>
    private static long EstimateTokens(JsonObject request)
    {
        var promptCharacters = request["messages"]!.ToJsonString().Length;
        var budget = request["max_completion_tokens"] ?? request["max_tokens"];
        var completion = budget?.GetValueKind() == JsonValueKind.Number ? budget.GetValue<long>() : 256;
        return (promptCharacters / 4) + completion;
    }

    public static IResult UpstreamUnavailable(string model) => OpenAIErrors.Result(StatusCodes.Status502BadGateway,
        $"The provider serving '{model}' could not be reached; retry later.", OpenAIErrors.ServerError, null, "upstream_unavailable");

    public static IResult ModelNotFound(string model) => OpenAIErrors.NotFound(
        $"The model `{model}` does not exist or you do not have access to it.", null, "model_not_found");
}
