namespace FineTunePlatform.Training.Scheduling;

/// <summary>A project's training settings (scheduling, and the promotion gate); projects without a row get the configured defaults.</summary>
public sealed class ProjectQuota
{
    public required string ProjectId { get; init; }

    public int Priority { get; set; }

    public int MaxConcurrentJobs { get; set; }

    public long TrainingTokensPerDay { get; set; }

    /// <summary>Jobs must name an automatic evaluation, and their models are published only when it passes.</summary>
    public bool RequireEvaluation { get; set; }
}

/// <summary>A trainer worker's last announcement: the scheduler dispatches only to the slots of live workers.</summary>
public sealed class TrainerWorker
{
    public required string WorkerId { get; init; }

    public int Slots { get; set; }

    public DateTimeOffset LastSeenAt { get; set; }
}

public sealed class SchedulerOptions
{
    /// <summary>How often the scheduler and the lease reconciler run when nothing wakes them sooner.</summary>
    public TimeSpan Interval { get; set; } = TimeSpan.FromMilliseconds(500);

    /// <summary>A worker's lease on an attempt; heartbeats renew it.</summary>
    public TimeSpan Lease { get; set; } = TimeSpan.FromSeconds(15);

    /// <summary>A dispatched attempt nobody claims within this goes back to the queue.</summary>
    public TimeSpan ClaimTimeout { get; set; } = TimeSpan.FromSeconds(15);

    /// <summary>A worker not heard from within this is gone; its slots no longer count.</summary>
    public TimeSpan WorkerTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>After this many lost attempts a job fails instead of being re-queued again.</summary>
    public int MaxAttempts { get; set; } = 5;

    /// <summary>How long a succeeded job waits for its evaluation's verdict before it asks again.</summary>
    public TimeSpan EvaluationResend { get; set; } = TimeSpan.FromMinutes(2);

    public int DefaultMaxConcurrentJobs { get; set; } = 2;

    public long DefaultTrainingTokensPerDay { get; set; } = 50_000_000;
}
