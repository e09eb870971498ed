namespace FineTunePlatform.Training.Jobs;

/// <summary>
/// A checkpoint saved at the end of an epoch: the model weights and optimiser state (content_chunks, owner = Id),
/// usable as a model (`{fine-tuned model}:ckpt-step-{n}`) and as the point a resumed attempt continues from.
/// </summary>
public sealed class JobCheckpoint
{
    public required string Id { get; init; }

    public required string JobId { get; init; }

    public required string ProjectId { get; init; }

    public required string ModelId { get; init; }

    public int Step { get; init; }

    public int Epoch { get; init; }

    public DateTimeOffset CreatedAt { get; init; }

    /// <summary>OpenAI's checkpoint metrics object as JSON (jsonb).</summary>
    public required string Metrics { get; init; }

    public long Bytes { get; set; }

    public required string Sha256 { get; set; }
}
