namespace FineTunePlatform.Evaluation.Runs;

/// <summary>One graded item of a run: the data-source item, the model's sample and each grader's result.</summary>
public sealed class EvalOutputItem
{
    public required string Id { get; init; }

    public required string RunId { get; init; }

    public required string EvalId { get; init; }

    public required string ProjectId { get; init; }

    /// <summary>The item's 0-based position in the data source: unique per run, so a resumed run skips it.</summary>
    public int DatasourceItemId { get; init; }

    public required string Item { get; init; }

    /// <summary>OpenAI's sample object, or null for a jsonl item that carried none.</summary>
    public string? Sample { get; init; }

    /// <summary>JSON array of {name, type, score, passed, sample}, one per testing criterion.</summary>
    public required string Results { get; init; }

    /// <summary>pass (every criterion passed), fail, or error (sampling failed; nothing was graded).</summary>
    public required string Status { get; init; }

    public DateTimeOffset CreatedAt { get; init; }
}

public static class OutputItemStatus
{
    public const string Pass = "pass";
    public const string Fail = "fail";
    public const string Error = "error";
}
