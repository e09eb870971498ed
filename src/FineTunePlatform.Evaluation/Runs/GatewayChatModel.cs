using System.Collections.Concurrent;
using FineTunePlatform.Contracts.Inference;
using FineTunePlatform.Evaluation.Graders;
using Grpc.Core;

namespace FineTunePlatform.Evaluation.Runs;

/// <summary>
/// Models reached through the gateway's InferenceService on behalf of one run's project (the same routing, access
/// checks, rate limits and usage accounting as the public API), counting invocations and tokens per model for the
/// run's per_model_usage. A model the project cannot reach fails the run; a rate limit or an unavailable gateway is
/// waited out (backing off up to 8 s, for at most 2 minutes per call) before the call counts as the item's error.
/// </summary>
public sealed class GatewayChatModel(InferenceService.InferenceServiceClient inference, Metadata caller) : IChatModel
{
    /// <summary>The completion budget of a call that sets none (a sample reports it).</summary>
    public const int DefaultMaxTokens = 256;
    private static readonly TimeSpan InitialBackoff = TimeSpan.FromMilliseconds(250);
    private static readonly TimeSpan MaxBackoff = TimeSpan.FromSeconds(8);
    private static readonly TimeSpan MaxWait = TimeSpan.FromMinutes(2);

    private readonly ConcurrentDictionary<string, ModelUsageCounter> _usage = new();

    public IEnumerable<(string Model, ModelUsageCounter Usage)> Usage => _usage.Select(pair => (pair.Key, pair.Value));

    /// <summary>Starts the counts from what an earlier attempt of the run recorded.</summary>
    public void Seed(string model, int invocations, long promptTokens, long completionTokens) =>
        _usage[model] = new ModelUsageCounter { Invocations = invocations, PromptTokens = promptTokens, CompletionTokens = completionTokens };

    public async Task<ChatReply> CompleteAsync(string model, IReadOnlyList<PromptMessage> messages, SamplingParams sampling, CancellationToken cancellationToken)
    {
        var request = new ChatCompletionRequest { Model = model, MaxTokens = sampling.MaxCompletionTokens ?? DefaultMaxTokens };
        request.Messages.AddRange(messages.Select(message => new ChatMessage { Role = message.Role, Content = message.Content }));
        if (sampling.Temperature is { } temperature)
        {
            request.Temperature = temperature;
        }

        if (sampling.TopP is { } topP)
        {
            request.TopP = topP;
        }

        if (sampling.Seed is { } seed)
        {
            request.Seed = seed;
        }

        ChatCompletionResult result;
        var backoff = InitialBackoff;
        var waited = TimeSpan.Zero;
        while (true)
        {
            try
            {
                result = await inference.CompleteChatAsync(request, caller, cancellationToken: cancellationToken);
                break;
            }
            catch (RpcException ex) when (ex.StatusCode is StatusCode.NotFound or StatusCode.PermissionDenied)
            {
                throw new RunFailedException("model_not_found", ex.Status.Detail);
            }
            catch (RpcException ex) when (ex.StatusCode is StatusCode.ResourceExhausted or StatusCode.Unavailable && waited < MaxWait)
            {
                // The project's rate limit (a run is held to it like any caller) or a gateway restarting: wait and
                // retry, so a large run paces itself instead of erroring its items.
                await Task.Delay(backoff, cancellationToken);
                waited += backoff;
                backoff = TimeSpan.FromTicks(Math.Min(backoff.Ticks * 2, MaxBackoff.Ticks));
            }
        }

        var usage = _usage.GetOrAdd(model, _ => new ModelUsageCounter());
        usage.Add(result.PromptTokens, result.CompletionTokens);
        return new ChatReply(result.Content, result.FinishReason, result.PromptTokens, result.CompletionTokens);
    }
}

public sealed class ModelUsageCounter
{
    private int _invocations;
    private long _promptTokens;
    private long _completionTokens;

    public int Invocations { get => _invocations; init => _invocations = value; }

    public long PromptTokens { get => _promptTokens; init => _promptTokens = value; }

    public long CompletionTokens { get => _completionTokens; init => _completionTokens = value; }

    public void Add(int promptTokens, int completionTokens)
    {
        Interlocked.Increment(ref _invocations);
        Interlocked.Add(ref _promptTokens, promptTokens);
        Interlocked.Add(ref _completionTokens, completionTokens);
    }
}
