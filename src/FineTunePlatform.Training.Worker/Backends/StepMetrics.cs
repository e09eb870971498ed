using FineTunePlatform.Contracts.Training;

namespace FineTunePlatform.Training.Worker.Backends;

/// <summary>
/// How every backend reports a step: a `metrics` job event in OpenAI's shape (train/valid loss and mean token
/// accuracy) and the checkpoint metrics of an epoch's last step, so the event stream and the checkpoints read the
/// same whichever model trained.
/// </summary>
public static class StepMetrics
{
    public static void Report(ITrainingSession session, int step, int totalSteps, double trainLoss, double trainAccuracy, (double Loss, double Accuracy)? validation)
    {
        session.ReportProgress(step, totalSteps);
        session.ReportEvent(
            $"Step {step}/{totalSteps}: training loss={trainLoss:0.0000}" + (validation is { } v ? $", validation loss={v.Loss:0.0000}" : ""),
            type: "metrics",
            data: new
            {
                step,
                train_loss = trainLoss,
                train_mean_token_accuracy = trainAccuracy,
                valid_loss = validation?.Loss,
                valid_mean_token_accuracy = validation?.Accuracy,
                total_steps = totalSteps,
            });
    }

    public static CheckpointMetrics ForCheckpoint(int step, (double Loss, double Accuracy)? train, (double Loss, double Accuracy)? validation)
    {
        var metrics = new CheckpointMetrics { Step = step };
        if (train is { } measured)
        {
            metrics.TrainLoss = measured.Loss;
            metrics.TrainMeanTokenAccuracy = measured.Accuracy;
        }

        if (validation is { } valid)
        {
            metrics.ValidLoss = valid.Loss;
            metrics.ValidMeanTokenAccuracy = valid.Accuracy;
        }

        return metrics;
    }
}
