namespace FineTunePlatform.Evaluation.Runs;

/// <summary>
/// One run of an eval over a data source. The row is the truth: a <see cref="RunExecutor"/> claims it with a lease,
/// writes output items as it grades them and keeps the counts current; a run whose lease runs out (its executor
/// died) is claimed again and continues after the items already graded.
/// </summary>
public sealed class EvalRun
{
    public required string Id { get; init; }

    public required string EvalId { get; init; }

    public required string ProjectId { get; init; }

    /// <summary>The API key that created the run: inference is accounted to it.</summary>
    public string? KeyId { get; init; }

    public required string Name { get; init; }

    public string Status { get; set; } = RunStatus.Queued;

    /// <summary>The sampled model, null for a jsonl data source (its samples come with the items).</summary>
    public string? Model { get; init; }

    public required string DataSource { get; init; }

    public required string Metadata { get; init; }

    public DateTimeOffset CreatedAt { get; init; }

    public DateTimeOffset? FinishedAt { get; set; }

    public string? ErrorCode { get; set; }

    public string? ErrorMessage { get; set; }

    public int Total { get; set; }

    public int Errored { get; set; }

    public int Failed { get; set; }

    public int Passed { get; set; }

    /// <summary>JSON array of {model_name, invocation_count, prompt_tokens, completion_tokens}.</summary>
    public string PerModelUsage { get; set; } = "[]";

    /// <summary>JSON array of {testing_criteria, passed, failed}.</summary>
    public string PerCriterion { get; set; } = "[]";

    /// <summary>How many times an executor has claimed the run (a graceful hand-back does not count).</summary>
    public int Attempts { get; set; }

    public string? LeaseOwner { get; set; }

    public DateTimeOffset? LeaseUntil { get; set; }

    public bool IsFinished => Status is RunStatus.Completed or RunStatus.Failed or RunStatus.Canceled;
}

public static class RunStatus
{
    public const string Queued = "queued";
    public const string InProgress = "in_progress";
    public const string Completed = "completed";
    public const string Failed = "failed";
    public const string Canceled = "canceled";

    public static readonly string[] All = [Queued, InProgress, Completed, Failed, Canceled];
}
