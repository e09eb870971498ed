namespace FineTunePlatform.Gateway.Usage;

/// <summary>Tokens one request used, as the usage pipeline receives it.</summary>
public sealed record UsageRecord(string ProjectId, string KeyId, string Model, DateOnly Day, long PromptTokens, long CompletionTokens);

/// <summary>Usage per project, key, model and day: the unit of `GET /v1/usage`.</summary>
public sealed class DailyUsage
{
    public required string ProjectId { get; init; }

    public required string KeyId { get; init; }

    public required string Model { get; init; }

    public DateOnly Day { get; init; }

    public long Requests { get; set; }

    public long PromptTokens { get; set; }

    public long CompletionTokens { get; set; }

    /// <summary>Training tokens a fine-tuning job billed; such rows carry the job id where requests carry a key id.</summary>
    public long TrainingTokens { get; set; }
}
