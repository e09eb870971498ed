using System.Globalization;

namespace FineTunePlatform.LocalModels;

/// <summary>Hyperparameters after "auto" was resolved, and why each has its value (shown in the job's events).</summary>
public sealed record ResolvedHyperparameters(int Epochs, int BatchSize, double LearningRateMultiplier, IReadOnlyList<string> Reasons)
{
    public int StepsPerEpoch(long examples) => (int)((examples + BatchSize - 1) / BatchSize);

    public string Explanation => string.Join("; ", Reasons);
}

/// <summary>
/// "auto" for the built-in presets, calibrated on them by the quality bench (docs/local-models.md has the figures).
/// OpenAI's heuristics (3 epochs, a batch of 0.2% of the examples) are made for large pre-trained models that move
/// in a few dozen steps; ours need a few hundred optimizer steps whatever the dataset's size, so the epochs come
/// from a minimum number of steps, and are capped by a token budget that keeps a job within about a minute.
/// Anything the user set is kept as set.
/// </summary>
public static class AutoHyperparameters
{
    /// <summary>
    /// Optimizer steps a job gets at least (fewer examples: more epochs), unless the token budget is reached. On the
    /// quality bench (route-4, 3 seeds) 200 / 300 / 500 steps gave 78 / 86 / 90% at 100 examples and 64–69% at 40.
    /// </summary>
    public const int MinimumSteps = 500;

    /// <summary>Epochs at least, so even a large file is seen several times.</summary>
    public const int MinimumEpochs = 3;

    /// <summary>The most epochs "auto" picks (the API allows up to 50 when set by hand).</summary>
    public const int MaximumEpochs = 40;

    /// <summary>Training tokens per job "auto" stays within, by preset (about a minute of training on two cores).</summary>
    public static long TokenBudget(ModelPreset preset) => preset.ParameterCount < 1_000_000 ? 600_000 : 150_000;

    /// <summary>
    /// Learning-rate multiplier for "auto": a pre-trained base is fine-tuned at a third of the preset's base rate
    /// (3e-3, made for training from random weights), which keeps what pre-training taught while the task is learned.
    /// </summary>
    public static double LearningRateMultiplierFor(bool pretrained) => pretrained ? 1.0 / 3 : 1.0;

    /// <summary>
    /// Resolves the unset values for a job on `preset` with `examples` examples of `tokensPerEpoch` tokens in all
    /// (counted with the preset's tokenizer, fitted to its context); `pretrained` is false only for a preset shape
    /// without shipped weights.
    /// </summary>
    public static ResolvedHyperparameters Resolve(ModelPreset preset, bool pretrained, long examples, long tokensPerEpoch,
        int? epochs = null, int? batchSize = null, double? learningRateMultiplier = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(examples, 1);
        var reasons = new List<string>();
        var batch = batchSize ?? (int)Math.Clamp(Math.Round(examples / 25.0), 2, 16);
        reasons.Add(batchSize is null
            ? $"batch_size {batch}: about 1/25 of the {examples} examples, between 2 and 16"
            : $"batch_size {batch}: as set");
        var stepsPerEpoch = (int)((examples + batch - 1) / batch);
        int resolvedEpochs;
        if (epochs is { } fixedEpochs)
        {
            resolvedEpochs = fixedEpochs;
            reasons.Add($"n_epochs {resolvedEpochs}: as set");
        }
        else
        {
            var forSteps = (int)Math.Ceiling(MinimumSteps / (double)stepsPerEpoch);
            var budget = TokenBudget(preset);
            var forBudget = (int)Math.Max(1, budget / Math.Max(1, tokensPerEpoch));
            resolvedEpochs = Math.Clamp(Math.Min(forSteps, forBudget), MinimumEpochs, MaximumEpochs);
            var why = forSteps <= forBudget
                ? $"at least {MinimumSteps} optimizer steps at {stepsPerEpoch} steps per epoch"
                : $"capped by {preset.Name}'s budget of {budget:N0} training tokens at {tokensPerEpoch:N0} tokens per epoch";
            reasons.Add($"n_epochs {resolvedEpochs}: {why}, between {MinimumEpochs} and {MaximumEpochs} ({resolvedEpochs * stepsPerEpoch} steps)");
        }

        var rate = learningRateMultiplier ?? LearningRateMultiplierFor(pretrained);
        reasons.Add(learningRateMultiplier is null
            ? string.Create(CultureInfo.InvariantCulture, $"learning_rate_multiplier {rate:0.###}: {(pretrained ? "fine-tuning a pre-trained base, a third of" : "training from random weights at")} the preset's AdamW rate of 3e-3")
            : string.Create(CultureInfo.InvariantCulture, $"learning_rate_multiplier {rate:0.###}: as set"));
        return new ResolvedHyperparameters(resolvedEpochs, batch, rate, reasons);
    }
}
