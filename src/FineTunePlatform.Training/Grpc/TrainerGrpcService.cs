using System.Security.Cryptography;
using FineTunePlatform.Contracts.IntegrationEvents;
using FineTunePlatform.Contracts.Training;
using FineTunePlatform.ServiceDefaults;
using FineTunePlatform.ServiceDefaults.Messaging;
using FineTunePlatform.ServiceDefaults.Storage;
using FineTunePlatform.Training.Infrastructure;
using FineTunePlatform.Training.Jobs;
using FineTunePlatform.Training.Models;
using FineTunePlatform.Training.Scheduling;
using Google.Protobuf;
using Grpc.Core;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using ProtoJob = FineTunePlatform.Contracts.Training.TrainingJob;
using TrainingJob = FineTunePlatform.Training.Jobs.TrainingJob;

namespace FineTunePlatform.Training.Grpc;

/// <summary>
/// What trainer workers call. Each call names the job, the attempt and the worker; only the worker holding the
/// current attempt's lease changes anything, so duplicates, stale attempts and workers that lost their lease are
/// refused (FailedPrecondition, code attempt_superseded) instead of training or finishing a job twice.
/// </summary>
public sealed class TrainerGrpcService(
    TrainingDbContext db,
    JobEventLog events,
    ModelCatalog catalog,
    ChunkStore chunks,
    ResultsFile results,
    SchedulerSignal scheduler,
    OutboxSignal outbox,
    TimeProvider time,
    IOptions<SchedulerOptions> options) : TrainerService.TrainerServiceBase
{
    /// <summary>Checkpoints kept per job: the last three epochs', like OpenAI.</summary>
    public const int KeptCheckpoints = 3;

    public override async Task<WorkerPresenceAck> RegisterWorker(WorkerPresence request, ServerCallContext context)
    {
        var worker = await db.Workers.FindAsync([request.WorkerId], context.CancellationToken);
        var isNew = worker is null;
        if (worker is null)
        {
            worker = new TrainerWorker { WorkerId = request.WorkerId };
            db.Workers.Add(worker);
        }

        worker.Slots = Math.Max(0, request.Slots);
        worker.LastSeenAt = time.GetUtcNow();
        await db.SaveChangesAsync(context.CancellationToken);
        if (isNew)
        {
            scheduler.Wake();
        }

        return new WorkerPresenceAck { LeaseSeconds = (int)options.Value.Lease.TotalSeconds };
    }

    public override async Task<ClaimJobResponse> ClaimJob(ClaimJobRequest request, ServerCallContext context)
    {
        var job = await db.Jobs.FirstOrDefaultAsync(job => job.Id == request.JobId, context.CancellationToken);
        if (job is null)
        {
            return new ClaimJobResponse { Granted = false, Reason = "the job does not exist" };
        }

        var refusal = job.RefuseWorker(request.Attempt, request.WorkerId, claiming: true);
        if (refusal is not null)
        {
            return new ClaimJobResponse { Granted = false, Reason = refusal };
        }

        var firstClaim = job.LeaseOwner is null;
        var now = time.GetUtcNow();
        job.Claim(request.WorkerId, now, now + options.Value.Lease);
        var resume = await db.Checkpoints.AsNoTracking().Where(checkpoint => checkpoint.JobId == job.Id)
            .OrderByDescending(checkpoint => checkpoint.Step).FirstOrDefaultAsync(context.CancellationToken);
        if (firstClaim)
        {
            events.Add(db, job.Id, resume is null
                ? $"Worker {request.WorkerId} is training attempt {job.Attempt}"
                : $"Worker {request.WorkerId} is training attempt {job.Attempt}, resuming from the checkpoint at step {resume.Step}");
        }

        try
        {
            await db.SaveChangesAsync(context.CancellationToken);
        }
        catch (DbUpdateConcurrencyException)
        {
            return new ClaimJobResponse { Granted = false, Reason = "another worker claimed the attempt first" };
        }

        var baseModel = await catalog.FindAsync(job.ProjectId, job.Model, context.CancellationToken);
        if (baseModel is null)
        {
            // The base was deleted or its grant revoked after the job was created.
            job.Fail(now, "invalid_model", $"The base model '{job.Model}' is no longer available to this project.", "model");
            events.Add(db, job.Id, $"The base model '{job.Model}' is no longer available; the job failed.", EventLevel.Error);
            await db.SaveChangesAsync(context.CancellationToken);
            return new ClaimJobResponse { Granted = false, Reason = "the base model is no longer available" };
        }

        return new ClaimJobResponse
        {
            Granted = true,
            Job = job.ToContract(now),
            BaseCheckpointId = baseModel.CheckpointId ?? "",
            ResumeCheckpointId = resume?.Id ?? "",
            LeaseSeconds = (int)options.Value.Lease.TotalSeconds,
        };
    }

    public override async Task<HeartbeatResponse> Heartbeat(JobHeartbeat request, ServerCallContext context)
    {
        var job = await db.Jobs.FirstOrDefaultAsync(job => job.Id == request.JobId, context.CancellationToken);
        if (job is null)
        {
            return new HeartbeatResponse { Action = HeartbeatAction.Lost };
        }

        if (job.RefuseWorker(request.Attempt, request.WorkerId, claiming: false) is not null)
        {
            var action = job.Attempt != request.Attempt ? HeartbeatAction.Lost : job.Status switch
            {
                JobStatus.Cancelled => HeartbeatAction.Cancelled,
                JobStatus.Paused => HeartbeatAction.Paused,
                _ => HeartbeatAction.Lost,
            };
            return new HeartbeatResponse { Action = action };
        }

        var now = time.GetUtcNow();
        job.RenewLease(request.WorkerId, now + options.Value.Lease);
        job.ReportProgress(request.Step, request.TotalSteps, now);

        try
        {
            await db.SaveChangesAsync(context.CancellationToken);
        }
        catch (DbUpdateConcurrencyException)
        {
            // A cancel or pause landed between the read and the write: the next heartbeat reports it.
            return new HeartbeatResponse { Action = HeartbeatAction.Continue };
        }

        return new HeartbeatResponse { Action = HeartbeatAction.Continue };
    }

    public override async Task<ReportEventsResponse> ReportEvents(ReportEventsRequest request, ServerCallContext context)
    {
        var job = await RequireLeaseAsync(request.JobId, request.Attempt, request.WorkerId, context.CancellationToken);
        // A batch the worker sends again (its call timed out after our commit) carries the same event ids: recorded once.
        var ids = request.Events.Select(reported => reported.Id).Where(id => id.Length > 0).ToList();
        var recorded = ids.Count == 0
            ? []
            : (await db.Events.AsNoTracking().Where(jobEvent => jobEvent.JobId == job.Id && ids.Contains(jobEvent.Id)).Select(jobEvent => jobEvent.Id).ToListAsync(context.CancellationToken)).ToHashSet();
        var steps = new List<int>();
        foreach (var reported in request.Events.Where(reported => !recorded.Contains(reported.Id)))
        {
            var type = string.IsNullOrEmpty(reported.Type) ? "message" : reported.Type;
            if (JobEventLog.MetricsStep(type, reported.DataJson) is { } step)
            {
                steps.Add(step);
            }

            events.Add(db, job.Id, reported.Message, string.IsNullOrEmpty(reported.Level) ? EventLevel.Info : reported.Level,
                type, string.IsNullOrEmpty(reported.DataJson) ? null : reported.DataJson, reported.Id.Length > 0 ? reported.Id : null);
        }

        // The steps a resumed attempt reports again replace the lost attempt's, in the transaction that adds them.
        await using var transaction = await db.Database.BeginTransactionAsync(context.CancellationToken);
        await JobEventLog.ReplaceStepsAsync(db, job.Id, steps, context.CancellationToken);
        try
        {
            await db.SaveChangesAsync(context.CancellationToken);
        }
        catch (DbUpdateException ex) when (ex.InnerException is Npgsql.PostgresException { SqlState: Npgsql.PostgresErrorCodes.UniqueViolation })
        {
            // The same batch, sent again while the first call was still committing it: that call records it.
            return new ReportEventsResponse();
        }

        await transaction.CommitAsync(context.CancellationToken);
        return new ReportEventsResponse();
    }

    public override async Task<Checkpoint> UploadCheckpoint(IAsyncStreamReader<CheckpointUpload> requestStream, ServerCallContext context)
    {
        var cancellationToken = context.CancellationToken;
        if (!await requestStream.MoveNext(cancellationToken) || requestStream.Current.PartCase != CheckpointUpload.PartOneofCase.Metadata)
        {
            throw PlatformException.InvalidArgument("The first checkpoint message must carry its metadata.");
        }

        var metadata = requestStream.Current.Metadata;
        var job = await RequireLeaseAsync(metadata.JobId, metadata.Attempt, metadata.WorkerId, cancellationToken);
        var checkpoint = new JobCheckpoint
        {
            Id = RandomIds.WithPrefix("ftckpt_"),
            JobId = job.Id,
            ProjectId = job.ProjectId,
            ModelId = $"{job.OutputModelId}:ckpt-step-{metadata.Step}",
            Step = metadata.Step,
            Epoch = metadata.Epoch,
            CreatedAt = time.GetUtcNow(),
            Metrics = JsonFormatter.Default.Format(metadata.Metrics ?? new CheckpointMetrics { Step = metadata.Step }),
            Sha256 = "",
        };

        // Content first under the new id; the row that makes it visible is written only once all of it is stored.
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var index = 0;
        long bytes = 0;
        try
        {
            while (await requestStream.MoveNext(cancellationToken))
            {
                var chunk = requestStream.Current.Chunk.Memory;
                hash.AppendData(chunk.Span);
                await chunks.WriteAsync(checkpoint.Id, index++, chunk, cancellationToken);
                bytes += chunk.Length;
            }
        }
        catch
        {
            await chunks.DeleteAsync(checkpoint.Id, CancellationToken.None);
            throw;
        }

        checkpoint.Bytes = bytes;
        checkpoint.Sha256 = Convert.ToHexStringLower(hash.GetHashAndReset());

        // A resumed attempt may save the same step again: the newer checkpoint replaces the older one.
        var replaced = await db.Checkpoints.Where(row => row.JobId == job.Id && row.Step == checkpoint.Step).ToListAsync(cancellationToken);
        db.Checkpoints.RemoveRange(replaced);
        await db.SaveChangesAsync(cancellationToken);
        db.Checkpoints.Add(checkpoint);
        var older = await db.Checkpoints.Where(row => row.JobId == job.Id && row.Step < checkpoint.Step)
            .OrderByDescending(row => row.Step).Skip(KeptCheckpoints - 1).ToListAsync(cancellationToken);
        db.Checkpoints.RemoveRange(older);
        events.Add(db, job.Id, $"Checkpoint created at step {checkpoint.Step} (epoch {checkpoint.Epoch})", data: new { step = checkpoint.Step, checkpoint = checkpoint.ModelId });
        await db.SaveChangesAsync(cancellationToken);
        foreach (var gone in replaced.Concat(older))
        {
            await chunks.DeleteAsync(gone.Id, cancellationToken);
        }

        return checkpoint.ToContract();
    }

    public override async Task ReadCheckpoint(ReadCheckpointRequest request, IServerStreamWriter<ArtifactChunk> responseStream, ServerCallContext context)
    {
        var exists = await db.Checkpoints.AnyAsync(checkpoint => checkpoint.Id == request.CheckpointId, context.CancellationToken);
        if (!exists)
        {
            throw PlatformException.NotFound($"No checkpoint '{request.CheckpointId}'.", "checkpoint_id");
        }

        await foreach (var chunk in chunks.ReadAsync(request.CheckpointId, context.CancellationToken))
        {
            await responseStream.WriteAsync(new ArtifactChunk { Data = UnsafeByteOperations.UnsafeWrap(chunk) }, context.CancellationToken);
        }
    }

    public override async Task<ProtoJob> CompleteJob(CompleteJobRequest request, ServerCallContext context)
    {
        var cancellationToken = context.CancellationToken;
        var existing = await db.Jobs.AsNoTracking().FirstOrDefaultAsync(job => job.Id == request.JobId, cancellationToken);
        if (existing is { Status: JobStatus.Succeeded } && existing.Attempt == request.Attempt)
        {
            // The worker retried a completion whose answer it did not receive.
            return existing.ToContract(time.GetUtcNow());
        }

        var job = await RequireLeaseAsync(request.JobId, request.Attempt, request.WorkerId, cancellationToken);
        var final = await db.Checkpoints.AsNoTracking().FirstOrDefaultAsync(checkpoint => checkpoint.Id == request.FinalCheckpointId && checkpoint.JobId == job.Id, cancellationToken)
            ?? throw PlatformException.InvalidArgument($"'{request.FinalCheckpointId}' is not a checkpoint of {job.Id}.", "final_checkpoint_id");
        var resultFile = await results.WriteAsync(job, cancellationToken);
        var now = time.GetUtcNow();
        var modelId = job.OutputModelId;
        job.Succeed(now, modelId, request.TrainedTokens, resultFile);
        db.Models.Add(new FineTunedModel
        {
            Id = modelId, ProjectId = job.ProjectId, BaseModel = job.Model, JobId = job.Id, CheckpointId = final.Id, CreatedAt = now,
            Status = job.EvaluationGated ? ModelStatus.PendingEvaluation : ModelStatus.Published,
        });
        events.Add(db, job.Id, $"New fine-tuned model created: {modelId}");
        if (job.EvalId is not null)
        {
            events.Add(db, job.Id, job.EvaluationGated
                ? $"Evaluating the model with eval {job.EvalId}; it is published when the evaluation passes"
                : $"Evaluating the model with eval {job.EvalId}");
        }

        events.Add(db, job.Id, "The job has successfully completed");
        await SaveFinishAsync(job, cancellationToken);
        if (job.Attempt == 1 && job.AttemptStartedAt is { } started && now > started)
        {
            // First attempts only: a resumed attempt reports the whole job's tokens for its own part of the time.
            PlatformMetrics.TrainingTokensPerSecond.Record(request.TrainedTokens / (now - started).TotalSeconds,
                new KeyValuePair<string, object?>("model", job.RootModel), new KeyValuePair<string, object?>("method", job.Method));
        }

        return job.ToContract(now);
    }

    public override async Task<ProtoJob> FailJob(FailJobRequest request, ServerCallContext context)
    {
        var job = await RequireLeaseAsync(request.JobId, request.Attempt, request.WorkerId, context.CancellationToken);
        var now = time.GetUtcNow();
        var error = request.Error ?? new JobError { Code = "internal", Message = "The worker reported a failure without details." };
        job.Fail(now, string.IsNullOrEmpty(error.Code) ? "internal" : error.Code, error.Message, string.IsNullOrEmpty(error.Param) ? null : error.Param);
        events.Add(db, job.Id, $"The job failed: {error.Message}", EventLevel.Error);
        await SaveFinishAsync(job, context.CancellationToken);
        return job.ToContract(now);
    }

    private async Task SaveFinishAsync(TrainingJob job, CancellationToken cancellationToken)
    {
        db.AddIntegrationEvent(job.ToFinishedEvent(), time.GetUtcNow());
        try
        {
            await db.SaveChangesAsync(cancellationToken);
        }
        catch (DbUpdateConcurrencyException)
        {
            throw PlatformException.FailedPrecondition($"Job {job.Id} changed (cancelled or paused) while finishing.", null, "attempt_superseded");
        }

        scheduler.Wake();
        outbox.Wake();
    }

    private async Task<TrainingJob> RequireLeaseAsync(string jobId, int attempt, string workerId, CancellationToken cancellationToken)
    {
        var job = await db.Jobs.FirstOrDefaultAsync(job => job.Id == jobId, cancellationToken)
            ?? throw PlatformException.NotFound($"No job '{jobId}'.", "job_id");
        var refusal = job.RefuseWorker(attempt, workerId, claiming: false);
        return refusal is null ? job : throw PlatformException.FailedPrecondition($"Refused for {jobId}: {refusal}.", null, "attempt_superseded");
    }
}
