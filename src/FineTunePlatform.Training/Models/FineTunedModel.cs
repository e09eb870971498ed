namespace FineTunePlatform.Training.Models;

/// <summary>A model a succeeded job published; its weights are the job's final checkpoint.</summary>
public sealed class FineTunedModel
{
    public required string Id { get; init; }

    public required string ProjectId { get; init; }

    public required string BaseModel { get; init; }

    public required string JobId { get; init; }

    public required string CheckpointId { get; init; }

    public DateTimeOffset CreatedAt { get; init; }
}
