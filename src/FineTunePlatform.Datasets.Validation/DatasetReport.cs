namespace FineTunePlatform.Datasets.Validation;

/// <summary>What validating a whole file found; stored with the file (as JSON) and served as its report.</summary>
public sealed record DatasetReport
{
    public required bool IsValid { get; init; }

    public required string? Format { get; init; }

    public required long ExampleCount { get; init; }

    public required long LineCount { get; init; }

    /// <summary>Every error counted, by category.</summary>
    public required Dictionary<string, long> ErrorCounts { get; init; }

    /// <summary>The first errors of each category, in line order (at most the configured cap per category).</summary>
    public required List<LineError> Errors { get; init; }

    public required DistributionSummary MessagesPerExample { get; init; }

    public required DistributionSummary TotalTokensPerExample { get; init; }

    public required DistributionSummary AssistantTokensPerExample { get; init; }

    public required long ExamplesMissingSystem { get; init; }

    public required long ExamplesMissingUser { get; init; }

    public required long ExamplesOverTokenLimit { get; init; }

    public required long TotalTokens { get; init; }

    public required long BillableTokensPerEpoch { get; init; }

    public required int RecommendedEpochs { get; init; }

    public long EstimatedBillableTokens => BillableTokensPerEpoch * RecommendedEpochs;

    /// <summary>How the chat examples fit each built-in preset's context (null in reports stored before it existed).</summary>
    public List<ModelFitReport>? ModelFits { get; init; }

    public long ErrorCount => ErrorCounts.Values.Sum();

    /// <summary>A one-paragraph summary for the file object's status_details.</summary>
    public string? StatusDetails => IsValid
        ? null
        : string.Join("; ", Errors.OrderBy(error => error.Line).Take(3).Select(error => error.Line > 0
            ? $"line {error.Line}: {error.Category} at {error.Path}: {error.Message}"
            : $"{error.Category}: {error.Message}")) + (ErrorCount > 3 ? $" (and {ErrorCount - 3} more; see /v1/files/{{id}}/report)" : "");
}

public sealed record DistributionSummary(double Min, double Max, double Mean, double Median, double P5, double P95)
{
    public static DistributionSummary Of(List<int> values)
    {
        if (values.Count == 0)
        {
            return new DistributionSummary(0, 0, 0, 0, 0, 0);
        }

        values.Sort();
        double Percentile(double p)
        {
            // Linear interpolation between closest ranks (numpy's default).
            var rank = p * (values.Count - 1);
            var lower = (int)Math.Floor(rank);
            var upper = (int)Math.Ceiling(rank);
            return values[lower] + ((values[upper] - values[lower]) * (rank - lower));
        }

        return new DistributionSummary(values[0], values[^1], values.Average(), Percentile(0.5), Percentile(0.05), Percentile(0.95));
    }
}

/// <summary>
/// How a file's examples fit one built-in preset's context, counted with its tokenizer: examples longer than the
/// context (their beginning is cut in training) and examples left with no assistant token to learn (skipped).
/// </summary>
public sealed record ModelFitReport(string Model, string Tokenizer, int ContextTokens, long Examples, long ExamplesTruncated, long ExamplesWithoutLearnedTokens,
    List<long> LinesWithoutLearnedTokens, long TokensPerEpoch)
{
    public bool NothingToLearn => Examples > 0 && ExamplesWithoutLearnedTokens >= Examples;

    /// <summary>A sentence for the report and the job's events; empty when every example fits.</summary>
    public string Message
    {
        get
        {
            var parts = new List<string>();
            if (ExamplesTruncated > 0)
            {
                parts.Add($"{ExamplesTruncated} of {Examples} examples are longer than {Model}'s context of {ContextTokens} tokens; their beginning is cut in training");
            }

            if (ExamplesWithoutLearnedTokens > 0)
            {
                parts.Add(NothingToLearn
                    ? $"no example has an assistant token left to learn within {Model}'s context of {ContextTokens} tokens: a job on {Model} would learn nothing"
                    : $"{ExamplesWithoutLearnedTokens} examples have no assistant token left to learn and are skipped (lines {string.Join(", ", LinesWithoutLearnedTokens)}{(ExamplesWithoutLearnedTokens > LinesWithoutLearnedTokens.Count ? ", ..." : "")})");
            }

            return parts.Count == 0 ? "" : string.Join("; ", parts) + ".";
        }
    }
}
