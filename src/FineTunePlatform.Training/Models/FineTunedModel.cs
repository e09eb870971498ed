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

    /// <summary>Whether it is served and shareable: published, or held by its job's evaluation (see <see cref="ModelStatus"/>).</summary>
    public string Status { get; set; } = ModelStatus.Published;
}

/// <summary>
/// A fine-tuned model of a project that requires evaluation is born `pending_evaluation` and becomes `published` or
/// `rejected` on its evaluation's verdict. Its owner may evaluate an unpublished model; nobody may chat with it, share
/// it or train on it.
/// </summary>
public static class ModelStatus
{
    public const string Published = "published";
    public const string PendingEvaluation = "pending_evaluation";
    public const string Rejected = "rejected";
}
