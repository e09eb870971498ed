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
