namespace FineTunePlatform.Contracts;

/// <summary>A fine-tuning job's status: OpenAI's wire values, plus `paused`. The training service owns the transitions
/// (TrainingJob); every other service and the CLI compare against these names, never against literals.</summary>
public static class JobStatus
{
    public const string ValidatingFiles = "validating_files";
    public const string Queued = "queued";
    public const string Running = "running";
    public const string Paused = "paused";
    public const string Succeeded = "succeeded";
    public const string Failed = "failed";
    public const string Cancelled = "cancelled";

    public static bool IsTerminal(string status) => status is Succeeded or Failed or Cancelled;
}
