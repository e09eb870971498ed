using FineTunePlatform.Contracts.Training;

namespace FineTunePlatform.Training.Worker.Backends;

/// <summary>
/// A way to train: the built-in CPU model (`local`) today; delegating to an OpenAI-compatible provider or an
/// external GPU trainer plug in here. A backend trains one attempt of a job and reports through the session.
/// </summary>
public interface ITrainingBackend
{
    string Name { get; }

    bool CanTrain(TrainingJob job);

    /// <summary>Trains to the end (or throws OperationCanceledException when the session stops it).</summary>
    Task<TrainingOutcome> TrainAsync(TrainingAttempt attempt, CancellationToken cancellationToken);
}

/// <summary>What an attempt starts from: the job, its base weights (a checkpoint when the base is fine-tuned) and the checkpoint to resume.</summary>
public sealed record TrainingAttempt(TrainingJob Job, string? BaseCheckpointId, string? ResumeCheckpointId, ITrainingSession Session);

/// <summary>The final checkpoint (the fine-tuned model's weights) and the tokens billed.</summary>
public sealed record TrainingOutcome(string FinalCheckpointId, long TrainedTokens);

/// <summary>What a backend may do while training: read inputs, report progress and metrics, save checkpoints.</summary>
public interface ITrainingSession
{
    /// <summary>A training or validation file, downloaded to a temporary file (deleted when the stream closes).</summary>
    Task<Stream> OpenFileAsync(string fileId, CancellationToken cancellationToken);

    /// <summary>A checkpoint's bytes, downloaded to a temporary file (deleted when the stream closes).</summary>
    Task<Stream> OpenCheckpointAsync(string checkpointId, CancellationToken cancellationToken);

    void ReportProgress(int step, int totalSteps);

    void ReportEvent(string message, string level = "info", string type = "message", object? data = null);

    /// <summary>Stores a checkpoint (written by `write`) with the training service; returns its id.</summary>
    Task<string> SaveCheckpointAsync(int step, int epoch, CheckpointMetrics metrics, Action<Stream> write, CancellationToken cancellationToken);
}

/// <summary>A failure the user must act on (bad data, a model too large for the worker), with OpenAI's error code.</summary>
public sealed class TrainingFailedException(string code, string message, string? param = null) : Exception(message)
{
    public string Code { get; } = code;

    public string? Param { get; } = param;
}
