namespace FineTunePlatform.Contracts.IntegrationEvents;

/// <summary>
/// A job reached a terminal state; `FineTunedModel` is set when it succeeded (evaluation listens for it), and
/// `TrainedTokens` are the training tokens it billed (the gateway's usage records them).
/// </summary>
public sealed record TrainingJobFinished(string JobId, string ProjectId, string Status, string? FineTunedModel, string BaseModel) : IntegrationEvent
{
    public long TrainedTokens { get; init; }
}
