namespace FineTunePlatform.Training.Jobs;

/// <summary>One line of a job's history: OpenAI's `message` and `metrics` events.</summary>
public sealed class JobEvent
{
    /// <summary>Global, increasing: orders a job's events and lets a watcher continue where it stopped.</summary>
    public long Sequence { get; init; }

    public required string Id { get; init; }

    public required string JobId { get; init; }

    public DateTimeOffset CreatedAt { get; init; }

    public required string Level { get; init; }

    public required string Message { get; init; }

    public required string Type { get; init; }

    /// <summary>OpenAI's `data` object (jsonb); metrics events carry step, train_loss, ...</summary>
    public required string Data { get; init; }
}

public static class EventLevel
{
    public const string Info = "info";
    public const string Warn = "warn";
    public const string Error = "error";
}
