using System.Text.Json.Nodes;
using FineTunePlatform.Contracts.Inference;
using FineTunePlatform.Gateway.Apis;
using FineTunePlatform.Gateway.Auth;
using FineTunePlatform.Gateway.RateLimiting;
using FineTunePlatform.Gateway.Routing;
using FineTunePlatform.Gateway.Usage;
using FineTunePlatform.LocalModels;
using Grpc.Core;

namespace FineTunePlatform.Gateway.Grpc;

/// <summary>
/// Chat completions for platform services (the evaluation service), on behalf of the project in the call's metadata:
/// the same model routing, rate limits and usage accounting as POST /v1/chat/completions.
/// </summary>
public sealed class InferenceGrpcService(
    ModelRouter router,
    ChatModels chatModels,
    UpstreamChatClient upstream,
    RequestRateLimiter limiter,
    ApiKeyCache identities,
    UsageRecorder usage,
    TimeProvider time) : InferenceService.InferenceServiceBase
{

    public override async Task<ChatCompletionResult> CompleteChat(ChatCompletionRequest request, ServerCallContext context)
    {
        var caller = context.GetCaller();
        var identity = await identities.ResolveProjectAsync(caller, context.CancellationToken)
            ?? throw PlatformException.PermissionDenied($"Project '{caller.ProjectId}' does not exist.");
        if (request.Messages.Count == 0)
        {
            throw PlatformException.InvalidArgument("'messages' must not be empty.", "messages");
        }

        var route = router.Find(request.Model);
        var served = route is null ? await chatModels.ResolveAsync(request.Model, caller, forEvaluation: true, context.CancellationToken) : null;
        if (route is null && served is null)
        {
            throw PlatformException.NotFound($"The model `{request.Model}` does not exist or you do not have access to it.", null, "model_not_found");
        }

        var maxTokens = request.HasMaxTokens ? request.MaxTokens : 256;
        var decision = await limiter.AdmitAsync(identity, (request.Messages.Sum(message => message.Content.Length) / 4) + maxTokens);
        if (decision.ExceedsLimit)
        {
            throw PlatformException.InvalidArgument(RateLimitHeaders.TooLargeMessage(decision), null, "request_too_large");
        }

        if (!decision.Allowed)
        {
            throw PlatformException.ResourceExhausted($"Rate limit reached for {decision.ExceededScope}.", null, "rate_limit_exceeded");
        }

        var result = route is null
            ? await CompleteLocallyAsync(served!, request, maxTokens, context.CancellationToken)
            : await CompleteUpstreamAsync(route, request, maxTokens, context.CancellationToken);
        usage.Record(new UsageRecord(identity.ProjectId, identity.KeyId, request.Model, DateOnly.FromDateTime(time.GetUtcNow().UtcDateTime),
            result.PromptTokens, result.CompletionTokens));
        return result;
    }

    private async Task<ChatCompletionResult> CompleteLocallyAsync(IChatModel model, ChatCompletionRequest request, int maxTokens, CancellationToken cancellationToken)
    {
        var messages = request.Messages.Select(message => new ChatTurn(message.Role, message.Content)).ToList();
        var options = new SamplingOptions(
            request.HasTemperature ? request.Temperature : 1, request.HasTopP ? request.TopP : 1, maxTokens, request.HasSeed ? (int)request.Seed : null);
        var generated = await model.CompleteAsync(messages, options, request.Stop.Count > 0 ? request.Stop : null, cancellationToken);
        return new ChatCompletionResult
        {
            Id = FineTunePlatform.ServiceDefaults.RandomIds.WithPrefix("chatcmpl-"),
            Model = request.Model,
            Content = generated.Text,
            FinishReason = generated.FinishReason,
            PromptTokens = generated.PromptTokens,
            CompletionTokens = generated.CompletionTokens,
        };
    }

    private async Task<ChatCompletionResult> CompleteUpstreamAsync(ModelRoute route, ChatCompletionRequest request, int maxTokens, CancellationToken cancellationToken)
    {
        var body = new JsonObject
        {
            ["model"] = request.Model,
            ["messages"] = new JsonArray(request.Messages.Select(message => (JsonNode)new JsonObject { ["role"] = message.Role, ["content"] = message.Content }).ToArray()),
            ["max_tokens"] = maxTokens,
        };
        if (request.HasTemperature)
        {
            body["temperature"] = request.Temperature;
        }

        if (request.HasTopP)
        {
            body["top_p"] = request.TopP;
        }

        if (request.HasSeed)
        {
            body["seed"] = request.Seed;
        }

        if (request.Stop.Count > 0)
        {
            body["stop"] = new JsonArray(request.Stop.Select(stop => (JsonNode)stop).ToArray());
        }

        HttpResponseMessage response;
        try
        {
            response = await upstream.SendAsync(route, body, cancellationToken);
        }
        catch (HttpRequestException)
        {
            throw new RpcException(new Status(StatusCode.Unavailable, $"The provider serving '{request.Model}' could not be reached."));
        }

        using (response)
        {
            var text = await response.Content.ReadAsStringAsync(cancellationToken);
            if (!response.IsSuccessStatusCode)
            {
                throw PlatformException.FailedPrecondition($"The provider answered {(int)response.StatusCode}: {text}", null, "upstream_error");
            }

            var completion = JsonNode.Parse(text)!;
            var choice = completion["choices"]![0]!;
            return new ChatCompletionResult
            {
                Id = completion["id"]?.GetValue<string>() ?? "",
                Model = request.Model,
                Content = choice["message"]?["content"]?.GetValue<string>() ?? "",
                FinishReason = choice["finish_reason"]?.GetValue<string>() ?? "stop",
                PromptTokens = completion["usage"]?["prompt_tokens"]?.GetValue<int>() ?? 0,
                CompletionTokens = completion["usage"]?["completion_tokens"]?.GetValue<int>() ?? 0,
            };
        }
    }
}
