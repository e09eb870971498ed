namespace FineTunePlatform.Contracts.IntegrationEvents;

/// <summary>A job reached a terminal state; `FineTunedModel` is set when it succeeded (evaluation listens for it).</summary>
public sealed record TrainingJobFinished(string JobId, string ProjectId, string Status, string? FineTunedModel, string BaseModel) : IntegrationEvent;
