namespace FineTunePlatform.Evaluation.Runs;

/// <summary>Evaluation:Runs: how runs are executed.</summary>
public sealed class RunOptions
{
    /// <summary>How often an executor looks for queued runs and runs whose executor died (a new run also wakes it).</summary>
    public TimeSpan PollInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>How long a claimed run stays this executor's without a progress write; renewed on every write.</summary>
    public TimeSpan Lease { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>How often graded items are written and the counts updated (and cancellation noticed).</summary>
    public TimeSpan FlushInterval { get; set; } = TimeSpan.FromMilliseconds(500);

    public int MaxConcurrentRuns { get; set; } = 2;

    /// <summary>Items of one run sampled and graded at once (the gateway batches concurrent local generations).</summary>
    public int ItemConcurrency { get; set; } = 8;

    public int MaxItems { get; set; } = 10_000;

    /// <summary>Claims of one run before it is failed: a run that keeps killing its executor must not loop forever.</summary>
    public int MaxAttempts { get; set; } = 3;
}
