using System.Collections.Concurrent;
using FineTunePlatform.Contracts.Training;
using FineTunePlatform.LocalModels;
using Grpc.Core;
using Checkpoint = FineTunePlatform.LocalModels.Checkpoint;

namespace FineTunePlatform.Gateway.Routing;

/// <summary>
/// The built-in CPU runtime: serves the base presets (`local-nano`, `local-small`) with their shipped pre-trained
/// weights, and fine-tuned `ft:local-*` models and their checkpoints with the weights the training service stores.
/// Whether a project may use a fine-tuned model is asked of the training service on every request (so a revoked
/// grant or a deleted model stops working at once); the weights are cached by their SHA-256, which never changes,
/// keeping the `Gateway:LocalRuntime:MaxCachedModels` most recently used (default 8).
/// Concurrent requests are decoded in batches per model (<see cref="GenerationScheduler"/>, at most
/// `Gateway:LocalRuntime:MaxBatch` at once, default 16; the rest wait in arrival order).
/// </summary>
public sealed class LocalModelRuntime(IServiceProvider services, IConfiguration configuration)
{
    private readonly ConcurrentDictionary<string, TransformerModel> _models = new();
    private readonly ContentCache<TransformerModel> _artifacts = new(Math.Max(1, configuration.GetValue("Gateway:LocalRuntime:MaxCachedModels", 8)));

    public GenerationScheduler Generation { get; } = new(Math.Max(1, configuration.GetValue("Gateway:LocalRuntime:MaxBatch", 16)));

    public static bool IsBaseModel(string model) => ModelPresets.TryGet(model, out _);

    /// <summary>Models this runtime may serve: a preset, or anything fine-tuned from one.</summary>
    public static bool IsLocalModel(string model) => IsBaseModel(model) || model.StartsWith("ft:local-", StringComparison.Ordinal);

    /// <summary>
    /// Whether the caller's project may use the model on this runtime (a base preset, or a fine-tuned model it owns or
    /// was granted), asked without loading any weights: for checks at the edge, such as an eval run's model at create.
    /// </summary>
    public async Task<bool> IsVisibleAsync(string model, InternalCaller caller, CancellationToken cancellationToken) =>
        IsBaseModel(model) || (IsLocalModel(model)
            && await services.GetRequiredService<TrainingService.TrainingServiceClient>().FindVisibleAsync(model, caller.ToMetadata(), cancellationToken) is not null);

    /// <summary>
    /// The weights of `model` as `caller` may use them, or null when it does not exist or is not visible to the caller.
    /// A model its evaluation has not published (see the training service's promotion gate) is refused unless
    /// `forEvaluation`: its own project's evals may sample it, nothing else may.
    /// </summary>
    public async Task<TransformerModel?> ResolveAsync(string model, InternalCaller caller, bool forEvaluation, CancellationToken cancellationToken)
    {
        if (IsBaseModel(model))
        {
            return Get(model);
        }

        if (!IsLocalModel(model))
        {
            return null;
        }

        var training = services.GetRequiredService<TrainingService.TrainingServiceClient>();
        var headers = caller.ToMetadata();
        if (await training.FindVisibleAsync(model, headers, cancellationToken) is not { } found)
        {
            return null;
        }

        ChatModels.EnsurePublished(found, forEvaluation);
        return await _artifacts.GetAsync(found.ArtifactSha256, () => DownloadAsync(training, model, headers), cancellationToken);
    }

    private static async Task<TransformerModel> DownloadAsync(TrainingService.TrainingServiceClient training, string model, Metadata headers)
    {
        using var call = training.ReadModelArtifact(new ReadModelArtifactRequest { ModelId = model }, headers);
        await using var weights = new MemoryStream();
        await foreach (var chunk in call.ResponseStream.ReadAllAsync())
        {
            weights.Write(chunk.Data.Span);
        }

        weights.Position = 0;
        return Checkpoint.Load(weights).Model;
    }

    public TransformerModel Get(string model) =>
        _models.GetOrAdd(model, name => ModelPresets.TryGet(name, out var preset)
            ? ModelPresets.LoadBase(preset)
            : throw new ArgumentException($"'{name}' is not a local model.", nameof(model)));

}
