using FineTunePlatform.Contracts.Datasets;
using FineTunePlatform.Contracts.IntegrationEvents;
using FineTunePlatform.Contracts.Training;
using FineTunePlatform.Training.Worker.Backends;
using Grpc.Core;
using Microsoft.Extensions.Options;

namespace FineTunePlatform.Training.Worker.Training;

/// <summary>
/// Runs one TrainJob delivery: claim the attempt (a refused claim means a duplicate or stale delivery, and nothing
/// is trained), train with the backend that handles the model while heartbeats hold the lease, then report success
/// or failure with OpenAI's error codes. A worker stopping mid-job reports nothing: its lease runs out and the job
/// resumes elsewhere from its last checkpoint.
/// </summary>
public sealed partial class JobRunner(
    TrainerService.TrainerServiceClient trainer,
    DatasetService.DatasetServiceClient datasets,
    IEnumerable<ITrainingBackend> backends,
    IOptions<WorkerOptions> options,
    ILogger<JobRunner> logger)
{

    public async Task RunAsync(TrainJob command, CancellationToken cancellationToken)
    {
        var workerId = options.Value.WorkerId;
        var claim = await trainer.ClaimJobAsync(new ClaimJobRequest { JobId = command.JobId, Attempt = command.Attempt, WorkerId = workerId }, cancellationToken: cancellationToken);
        if (!claim.Granted)
        {
            LogClaimRefused(logger, command.JobId, command.Attempt, claim.Reason);
            return;
        }

        var job = claim.Job;
        LogTraining(logger, job.Id, command.Attempt, job.Model);
        var projectHeaders = new InternalCaller(job.ProjectId, Roles.Member, null).ToMetadata();
        var session = new TrainingSession(job, command.Attempt, workerId, trainer, datasets, projectHeaders);
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var heartbeats = session.RunHeartbeatsAsync(options.Value.HeartbeatInterval, stop, ex =>
        {
            LogHeartbeatFailed(logger, ex, job.Id);
            return Task.CompletedTask;
        });
        try
        {
            var backend = backends.FirstOrDefault(candidate => candidate.CanTrain(job))
                ?? throw new TrainingFailedException("invalid_model", $"No training backend on this worker can train '{job.Model}'.", "model");
            var attempt = new TrainingAttempt(job, NullIfEmpty(claim.BaseCheckpointId), NullIfEmpty(claim.ResumeCheckpointId), session);
            var outcome = await backend.TrainAsync(attempt, stop.Token);
            await stop.CancelAsync();
            await heartbeats;
            await session.FlushEventsAsync(cancellationToken);
            await TransientRpc.RetryAsync(() => trainer.CompleteJobAsync(new CompleteJobRequest
            {
                JobId = job.Id, Attempt = command.Attempt, WorkerId = workerId, TrainedTokens = outcome.TrainedTokens, FinalCheckpointId = outcome.FinalCheckpointId,
            }, cancellationToken: cancellationToken).ResponseAsync, cancellationToken);
            LogSucceeded(logger, job.Id, command.Attempt);
        }
        catch (OperationCanceledException) when (session.StopReason is not null)
        {
            LogStopped(logger, job.Id, command.Attempt, session.StopReason.ToString()!);
        }
        catch (Exception) when (cancellationToken.IsCancellationRequested)
        {
            // The worker is stopping (its clients may already be disposed): leave the attempt to its lease.
            LogShuttingDown(logger, job.Id, command.Attempt);
        }
        catch (TrainingFailedException ex)
        {
            await FailAsync(job, command.Attempt, workerId, new JobError { Code = ex.Code, Message = ex.Message, Param = ex.Param ?? "" }, session, cancellationToken);
        }
        catch (OutOfMemoryException)
        {
            await FailAsync(job, command.Attempt, workerId, new JobError { Code = "out_of_memory", Message = $"The worker ran out of memory training '{job.Model}' with batch size {job.BatchSize}; try a smaller batch size." }, session, cancellationToken);
        }
        catch (RpcException ex) when (ex.Status.StatusCode == StatusCode.FailedPrecondition)
        {
            // The training service refused this attempt (cancelled, paused or superseded between two heartbeats).
            LogStopped(logger, job.Id, command.Attempt, ex.Status.Detail);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            LogTrainingFailed(logger, ex, job.Id, command.Attempt);
            await FailAsync(job, command.Attempt, workerId, new JobError { Code = "internal", Message = "Training failed on the worker because of an internal error." }, session, cancellationToken);
        }
        finally
        {
            await stop.CancelAsync();
            await heartbeats;
        }
    }

    private async Task FailAsync(TrainingJob job, int attempt, string workerId, JobError error, TrainingSession session, CancellationToken cancellationToken)
    {
        try
        {
            await session.FlushEventsAsync(cancellationToken);
            await TransientRpc.RetryAsync(() => trainer.FailJobAsync(new FailJobRequest { JobId = job.Id, Attempt = attempt, WorkerId = workerId, Error = error }, cancellationToken: cancellationToken).ResponseAsync, cancellationToken);
        }
        catch (RpcException ex) when (ex.Status.StatusCode == StatusCode.FailedPrecondition)
        {
            LogStopped(logger, job.Id, attempt, ex.Status.Detail);
        }
    }

    private static string? NullIfEmpty(string value) => value.Length == 0 ? null : value;

    [LoggerMessage(LogLevel.Information, "TrainJob {JobId} attempt {Attempt} not claimed: {Reason}")]
    private static partial void LogClaimRefused(ILogger logger, string jobId, int attempt, string reason);

    [LoggerMessage(LogLevel.Information, "Training {JobId} attempt {Attempt} on {Model}")]
    private static partial void LogTraining(ILogger logger, string jobId, int attempt, string model);

    [LoggerMessage(LogLevel.Information, "Job {JobId} attempt {Attempt} succeeded")]
    private static partial void LogSucceeded(ILogger logger, string jobId, int attempt);

    [LoggerMessage(LogLevel.Information, "Job {JobId} attempt {Attempt} stopped: {Reason}")]
    private static partial void LogStopped(ILogger logger, string jobId, int attempt, string reason);

    [LoggerMessage(LogLevel.Warning, "Worker stopping: job {JobId} attempt {Attempt} left to its lease, it resumes elsewhere")]
    private static partial void LogShuttingDown(ILogger logger, string jobId, int attempt);

    [LoggerMessage(LogLevel.Warning, "Heartbeat for {JobId} failed; training continues")]
    private static partial void LogHeartbeatFailed(ILogger logger, Exception exception, string jobId);

    [LoggerMessage(LogLevel.Error, "Job {JobId} attempt {Attempt} failed")]
    private static partial void LogTrainingFailed(ILogger logger, Exception exception, string jobId, int attempt);
}
