namespace FineTunePlatform.Training.Models;

/// <summary>A sharing grant: the owner lets another project use a fine-tuned model or one of its checkpoints.</summary>
public sealed class ModelPermission
{
    public required string Id { get; init; }

    public required string ModelId { get; init; }

    public required string OwnerProjectId { get; init; }

    public required string ProjectId { get; init; }

    public DateTimeOffset CreatedAt { get; init; }
}
