using System.Text;
using FineTunePlatform.Contracts.Training;
using FineTunePlatform.LocalModels;

namespace FineTunePlatform.Gateway.Routing;

/// <summary>
/// A model the gateway runs in its own process (a built-in preset or one tuned from it, or an imported open-weight
/// base with or without an adapter), ready to answer a chat. POST /v1/chat/completions and the internal
/// InferenceService both answer through it, so the two pipelines cannot drift apart.
/// </summary>
public interface IChatModel
{
    /// <summary>
    /// Starts a reply and streams it: text deltas as they become safe to show (never half a character, never the
    /// start of a stop sequence), the last piece carrying the result. A request the model cannot take (a prompt
    /// beyond its context, a conversation its template refuses) throws a PlatformException here, before anything
    /// is streamed, so that the caller can still answer it as a 400.
    /// </summary>
    IAsyncEnumerable<(string Delta, GenerationResult? Result)> Start(IReadOnlyList<ChatTurn> messages, SamplingOptions options, IReadOnlyList<string>? stop, CancellationToken cancellationToken);
}

public static class ChatModelExtensions
{
    /// <summary>The whole reply at once.</summary>
    public static async Task<GenerationResult> CompleteAsync(this IChatModel model, IReadOnlyList<ChatTurn> messages, SamplingOptions options,
        IReadOnlyList<string>? stop, CancellationToken cancellationToken)
    {
        var text = new StringBuilder();
        GenerationResult? result = null;
        await foreach (var (delta, final) in model.Start(messages, options, stop, cancellationToken))
        {
            text.Append(delta);
            result = final ?? result;
        }

        return result! with { Text = text.ToString() };
    }
}

/// <summary>
/// Which in-process runtime serves a model: the built-in one for the presets and `ft:local-*`, the open-weights one
/// for anything whose registry entry says `open_weights`. Null when neither serves it (unknown, invisible to the
/// caller, or an upstream provider's model, which <see cref="ModelRouter"/> routes first).
/// </summary>
public sealed class ChatModels(LocalModelRuntime builtIn, OpenWeightsRuntime openWeights)
{
    public async Task<IChatModel?> ResolveAsync(string model, InternalCaller caller, bool forEvaluation, CancellationToken cancellationToken)
    {
        if (LocalModelRuntime.IsLocalModel(model))
        {
            return await builtIn.ResolveAsync(model, caller, forEvaluation, cancellationToken) is { } weights
                ? new BuiltInChatModel(weights, builtIn.Generation)
                : null;
        }

        return await openWeights.ResolveAsync(model, caller, forEvaluation, cancellationToken);
    }

    /// <summary>Whether the caller may use the model on one of these runtimes, asked without loading any weights.</summary>
    public async Task<bool> IsVisibleAsync(string model, InternalCaller caller, CancellationToken cancellationToken) =>
        LocalModelRuntime.IsLocalModel(model)
            ? await builtIn.IsVisibleAsync(model, caller, cancellationToken)
            : await openWeights.IsVisibleAsync(model, caller, cancellationToken);

    /// <summary>
    /// A model its evaluation has not published (the training service's promotion gate) is refused unless
    /// `forEvaluation`: its own project's evals may sample it, nothing else may.
    /// </summary>
    public static void EnsurePublished(Model found, bool forEvaluation)
    {
        if (found.Status is not ("" or "published") && !forEvaluation)
        {
            throw PlatformException.PermissionDenied(
                $"The model `{found.Id}` is {found.Status.Replace('_', ' ')}: its project publishes a fine-tuned model only when its evaluation shows it does at least as well as its base.",
                "model_not_published");
        }
    }

    private sealed class BuiltInChatModel(TransformerModel weights, GenerationScheduler scheduler) : IChatModel
    {
        public IAsyncEnumerable<(string Delta, GenerationResult? Result)> Start(IReadOnlyList<ChatTurn> messages, SamplingOptions options,
            IReadOnlyList<string>? stop, CancellationToken cancellationToken) => scheduler.StreamAsync(weights, messages, options, stop, cancellationToken);
    }
}
