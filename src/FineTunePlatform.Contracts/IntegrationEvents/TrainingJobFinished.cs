namespace FineTunePlatform.Contracts.IntegrationEvents;

/// <summary>
/// A job reached a terminal state; `FineTunedModel` is set when it succeeded, and `TrainedTokens` are the training
/// tokens it billed (the gateway's usage records them). `Evaluation` is set when a succeeded job asked for an
/// automatic evaluation (the evaluation service runs it and answers with <see cref="FineTunedModelEvaluated"/>).
/// </summary>
public sealed record TrainingJobFinished(string JobId, string ProjectId, string Status, string? FineTunedModel, string BaseModel) : IntegrationEvent
{
    public long TrainedTokens { get; init; }

    public JobEvaluationRequest? Evaluation { get; init; }
}

/// <summary>Which eval to run on the base and the tuned model, with which data source (no model in it), and the bar.</summary>
public sealed record JobEvaluationRequest(string EvalId, string DataSourceJson, double MinImprovement);
