namespace FineTunePlatform.Contracts.IntegrationEvents;

/// <summary>
/// The evaluation service's verdict on a job's automatic evaluation: `promote` (the tuned model's pass rate is at
/// least the base's plus the job's min_improvement), `reject`, or `failed` (a run did not complete; nothing was
/// shown). Training publishes or rejects a model held for it, once per job however often this is delivered.
/// </summary>
public sealed record FineTunedModelEvaluated(
    string JobId,
    string ProjectId,
    string FineTunedModel,
    string EvalId,
    string BaseRunId,
    string TunedRunId,
    string Verdict,
    string Summary) : IntegrationEvent
{
    public double? BaselinePassRate { get; init; }

    public double? CandidatePassRate { get; init; }
}

public static class EvaluationVerdict
{
    public const string Promote = "promote";
    public const string Reject = "reject";
    public const string Failed = "failed";
}
