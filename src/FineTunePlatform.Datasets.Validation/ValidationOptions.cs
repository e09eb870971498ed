namespace FineTunePlatform.Datasets.Validation;

/// <summary>Limits of validation, bound from `Datasets:Validation`.</summary>
public sealed class ValidationOptions
{
    /// <summary>Longest line accepted; longer lines are reported (line_too_long) and skipped without being buffered.</summary>
    public int MaxLineBytes { get; set; } = 4 * 1024 * 1024;

    /// <summary>OpenAI requires at least 10 examples in a fine-tuning file.</summary>
    public int MinExamples { get; set; } = 10;

    /// <summary>How many errors of each category a report lists (all are counted).</summary>
    public int MaxListedErrorsPerCategory { get; set; } = 20;

    /// <summary>Token limit per example when the upload names no base model (OpenAI's gpt-4o-mini training limit).</summary>
    public int DefaultMaxTokensPerExample { get; set; } = 65536;

    /// <summary>Token limits of known base models, by model id.</summary>
    public Dictionary<string, int> MaxTokensPerExampleByModel { get; set; } = new()
    {
        ["local-nano"] = 512,
        ["local-small"] = 1024,
        ["gpt-4o-mini-2024-07-18"] = 65536,
        ["gpt-4o-2024-08-06"] = 65536,
        ["gpt-4.1-mini-2025-04-14"] = 65536,
        ["gpt-3.5-turbo-0125"] = 16385,
    };

    /// <summary>Lines checked at once across cores; memory stays bounded by batches in flight.</summary>
    public int Parallelism { get; set; } = Environment.ProcessorCount;

    public int MaxTokensFor(string? baseModel)
    {
        if (string.IsNullOrEmpty(baseModel))
        {
            return DefaultMaxTokensPerExample;
        }

        // A fine-tuned model keeps its base's limit.
        return MaxTokensPerExampleByModel.TryGetValue(BaseModelOf(baseModel), out var limit) ? limit : DefaultMaxTokensPerExample;
    }

    /// <summary>The model a fine-tuned model was tuned from, at the root of its id (ft:{base}:...); any other id is its own.</summary>
    public static string BaseModelOf(string model) => model.StartsWith("ft:", StringComparison.Ordinal) ? model.Split(':')[1] : model;
}
