namespace FineTunePlatform.Contracts;

/// <summary>OpenAI's `method.type` values a job can train with.</summary>
public static class FineTuningMethods
{
    public const string Supervised = "supervised";
    public const string Dpo = "dpo";

    public static readonly IReadOnlyList<string> All = [Supervised, Dpo];
}
