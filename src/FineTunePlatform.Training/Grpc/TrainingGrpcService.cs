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
using ProtoQuota = FineTunePlatform.Contracts.Training.ProjectQuota;

namespace FineTunePlatform.Training.Grpc;

/// <summary>
/// The training service's project-facing surface (the gateway calls it for a caller): jobs, events, checkpoints,
/// models and grants. Every query is scoped to the caller's project; other projects' ids are simply not found.
/// </summary>
public sealed class TrainingGrpcService(
    TrainingDbContext db,
    JobCreator creator,
    JobEventLog events,
    JobEventHub hub,
    ModelCatalog catalog,
    BaseModelLibrary baseModels,
    TrainingFileFits fileFits,
    ChunkStore chunks,
    SchedulerSignal scheduler,
    OutboxSignal outbox,
    TimeProvider time,
    IOptions<SchedulerOptions> schedulerOptions) : TrainingService.TrainingServiceBase
{

    public override async Task<ProtoJob> CreateJob(CreateJobRequest request, ServerCallContext context)
    {
        var caller = context.GetCaller();
        var job = await creator.CreateAsync(caller, request, context.CancellationToken);
        return job.ToContract(time.GetUtcNow());
    }

    public override async Task<ProtoJob> GetJob(JobRequest request, ServerCallContext context)
    {
        var caller = context.GetCaller();
        var job = await FindJobAsync(caller, request.JobId, tracking: false, context.CancellationToken);
        return job.ToContract(time.GetUtcNow());
    }

    public override async Task<ListJobsResponse> ListJobs(ListJobsRequest request, ServerCallContext context)
    {
        var caller = context.GetCaller();
        var limit = PageSizes.Of(request.Limit, 20);
        var query = db.Jobs.AsNoTracking().Where(job => job.ProjectId == caller.ProjectId);
        if (request.Metadata.Count > 0)
        {
            var wanted = System.Text.Json.JsonSerializer.Serialize(new Dictionary<string, string>(request.Metadata));
            query = query.Where(job => EF.Functions.JsonContains(job.Metadata, wanted));
        }

        if (!string.IsNullOrEmpty(request.After))
        {
            var after = await db.Jobs.AsNoTracking().Where(job => job.Id == request.After && job.ProjectId == caller.ProjectId)
                .Select(job => new { job.CreatedAt, job.Id }).FirstOrDefaultAsync(context.CancellationToken)
                ?? throw PlatformException.InvalidArgument($"'after' names no job of this project: {request.After}", "after");
            query = query.Where(job => job.CreatedAt < after.CreatedAt || (job.CreatedAt == after.CreatedAt && string.Compare(job.Id, after.Id) < 0));
        }

        var page = await query.OrderByDescending(job => job.CreatedAt).ThenByDescending(job => job.Id).Take(limit + 1).ToListAsync(context.CancellationToken);
        var now = time.GetUtcNow();
        var response = new ListJobsResponse { HasMore = page.Count > limit };
        response.Jobs.AddRange(page.Take(limit).Select(job => job.ToContract(now)));
        return response;
    }

    public override Task<ProtoJob> CancelJob(JobRequest request, ServerCallContext context) =>
        TransitionAsync(request, context, (job, now) =>
        {
            job.Cancel(now);
            return "Job cancelled";
        });

    public override Task<ProtoJob> PauseJob(JobRequest request, ServerCallContext context) =>
        TransitionAsync(request, context, (job, _) =>
        {
            var wasRunning = job.Status == JobStatus.Running;
            job.Pause();
            return wasRunning ? "Job paused; it will continue from its last checkpoint when resumed" : "Job paused";
        });

    public override Task<ProtoJob> ResumeJob(JobRequest request, ServerCallContext context) =>
        TransitionAsync(request, context, (job, _) =>
        {
            job.Resume();
            return "Job resumed and queued";
        });

    public override async Task<ListJobEventsResponse> ListJobEvents(ListJobEventsRequest request, ServerCallContext context)
    {
        var caller = context.GetCaller();
        var job = await FindJobAsync(caller, request.JobId, tracking: false, context.CancellationToken);
        var limit = PageSizes.Of(request.Limit, 20);
        var query = db.Events.AsNoTracking().Where(jobEvent => jobEvent.JobId == job.Id);
        if (!string.IsNullOrEmpty(request.After))
        {
            var after = await db.Events.AsNoTracking().Where(jobEvent => jobEvent.Id == request.After && jobEvent.JobId == job.Id)
                .Select(jobEvent => (long?)jobEvent.Sequence).FirstOrDefaultAsync(context.CancellationToken)
                ?? throw PlatformException.InvalidArgument($"'after' names no event of this job: {request.After}", "after");
            query = query.Where(jobEvent => jobEvent.Sequence < after);
        }

        var page = await query.OrderByDescending(jobEvent => jobEvent.Sequence).Take(limit + 1).ToListAsync(context.CancellationToken);
        var response = new ListJobEventsResponse { HasMore = page.Count > limit };
        response.Events.AddRange(page.Take(limit).Select(jobEvent => jobEvent.ToContract()));
        return response;
    }

    public override async Task WatchJobEvents(WatchJobEventsRequest request, IServerStreamWriter<Contracts.Training.JobEvent> responseStream, ServerCallContext context)
    {
        var caller = context.GetCaller();
        var job = await FindJobAsync(caller, request.JobId, tracking: false, context.CancellationToken);
        var cancellationToken = context.CancellationToken;
        var after = request.AfterSequence;
        if (!string.IsNullOrEmpty(request.AfterEventId))
        {
            after = await db.Events.AsNoTracking().Where(jobEvent => jobEvent.Id == request.AfterEventId && jobEvent.JobId == job.Id)
                .Select(jobEvent => (long?)jobEvent.Sequence).FirstOrDefaultAsync(cancellationToken)
                ?? throw PlatformException.InvalidArgument($"Job {job.Id} has no event '{request.AfterEventId}' to resume after.", "after", "invalid_after");
        }

        var feed = new JobEventFeed(after, JobEventFeed.DefaultSettleTime, time);
        while (!cancellationToken.IsCancellationRequested)
        {
            var next = hub.NextEventAsync(job.Id);
            // The status is read before the events: when it is final, the final transition's events (same
            // transaction) are already committed and the read below includes them.
            var status = await db.Jobs.AsNoTracking().Where(row => row.Id == job.Id).Select(row => row.Status).FirstAsync(cancellationToken);
            var floor = feed.Floor;
            var sent = feed.SentAboveFloor.ToArray();
            var fresh = await db.Events.AsNoTracking().Where(jobEvent => jobEvent.JobId == job.Id && jobEvent.Sequence > floor && !sent.Contains(jobEvent.Sequence))
                .OrderBy(jobEvent => jobEvent.Sequence).Take(500).ToListAsync(cancellationToken);
            foreach (var jobEvent in fresh)
            {
                await responseStream.WriteAsync(jobEvent.ToContract(), cancellationToken);
                feed.MarkSent(jobEvent.Sequence);
            }

            feed.Settle();
            if (fresh.Count == 500)
            {
                continue;
            }

            if (JobStatus.IsTerminal(status))
            {
                return;
            }

            await Task.WhenAny(next, Task.Delay(TimeSpan.FromSeconds(2), cancellationToken));
        }
    }

    public override async Task<ListCheckpointsResponse> ListCheckpoints(ListCheckpointsRequest request, ServerCallContext context)
    {
        var caller = context.GetCaller();
        var job = await FindJobAsync(caller, request.JobId, tracking: false, context.CancellationToken);
        var limit = PageSizes.Of(request.Limit, 10);
        var query = db.Checkpoints.AsNoTracking().Where(checkpoint => checkpoint.JobId == job.Id);
        if (!string.IsNullOrEmpty(request.After))
        {
            var after = await db.Checkpoints.AsNoTracking().Where(checkpoint => checkpoint.Id == request.After && checkpoint.JobId == job.Id)
                .Select(checkpoint => (int?)checkpoint.Step).FirstOrDefaultAsync(context.CancellationToken)
                ?? throw PlatformException.InvalidArgument($"'after' names no checkpoint of this job: {request.After}", "after");
            query = query.Where(checkpoint => checkpoint.Step < after);
        }

        var page = await query.OrderByDescending(checkpoint => checkpoint.Step).Take(limit + 1).ToListAsync(context.CancellationToken);
        var response = new ListCheckpointsResponse { HasMore = page.Count > limit };
        response.Checkpoints.AddRange(page.Take(limit).Select(checkpoint => checkpoint.ToContract()));
        return response;
    }

    public override async Task<ProtoQuota> SetProjectQuota(ProtoQuota request, ServerCallContext context)
    {
        RequireAdmin(context.GetCaller());
        if (string.IsNullOrWhiteSpace(request.ProjectId) || request.MaxConcurrentJobs < 0 || request.TrainingTokensPerDay < 0)
        {
            throw PlatformException.InvalidArgument("A quota needs a project id and non-negative limits.");
        }

        var quota = await db.Quotas.FindAsync([request.ProjectId], context.CancellationToken);
        if (quota is null)
        {
            quota = new Scheduling.ProjectQuota { ProjectId = request.ProjectId };
            db.Quotas.Add(quota);
        }

        quota.Priority = request.Priority;
        quota.MaxConcurrentJobs = request.MaxConcurrentJobs;
        quota.TrainingTokensPerDay = request.TrainingTokensPerDay;
        quota.RequireEvaluation = request.RequireEvaluation;
        await db.SaveChangesAsync(context.CancellationToken);
        scheduler.Wake();
        return request;
    }

    public override async Task<ProtoQuota> GetProjectQuota(GetProjectQuotaRequest request, ServerCallContext context)
    {
        RequireAdmin(context.GetCaller());
        var quota = await db.Quotas.AsNoTracking().FirstOrDefaultAsync(quota => quota.ProjectId == request.ProjectId, context.CancellationToken);
        var defaults = schedulerOptions.Value;
        return new ProtoQuota
        {
            ProjectId = request.ProjectId,
            Priority = quota?.Priority ?? 0,
            MaxConcurrentJobs = quota?.MaxConcurrentJobs ?? defaults.DefaultMaxConcurrentJobs,
            TrainingTokensPerDay = quota?.TrainingTokensPerDay ?? defaults.DefaultTrainingTokensPerDay,
            RequireEvaluation = quota?.RequireEvaluation ?? false,
        };
    }

    public override async Task<ListModelsResponse> ListModels(ListModelsRequest request, ServerCallContext context)
    {
        var caller = context.GetCaller();
        var response = new ListModelsResponse();
        response.Models.AddRange((await catalog.ListAsync(caller.ProjectId, context.CancellationToken)).Select(model => model.ToContract()));
        return response;
    }

    public override async Task<Model> GetModel(GetModelRequest request, ServerCallContext context)
    {
        var caller = context.GetCaller();
        var model = await FindModelAsync(caller, request.ModelId, context.CancellationToken);
        var contract = model.ToContract();
        if (model.CheckpointId is not null)
        {
            var checkpoint = await db.Checkpoints.AsNoTracking().FirstAsync(checkpoint => checkpoint.Id == model.CheckpointId, context.CancellationToken);
            contract.ArtifactBytes = checkpoint.Bytes;
            contract.ArtifactSha256 = checkpoint.Sha256;
        }

        return contract;
    }

    public override async Task<DeleteModelResponse> DeleteModel(DeleteModelRequest request, ServerCallContext context)
    {
        var caller = context.GetCaller();
        var model = await FindModelAsync(caller, request.ModelId, context.CancellationToken);
        if (model.Kind == ModelKinds.Base && model.Backend == ModelBackends.OpenWeights)
        {
            await baseModels.DeleteAsync(caller, model.Id, context.CancellationToken);
            return new DeleteModelResponse { ModelId = model.Id, Deleted = true };
        }

        if (model.Kind != ModelKinds.FineTuned || model.Access != ModelAccess.Owner)
        {
            throw PlatformException.PermissionDenied($"Only the owning project can delete '{model.Id}', and only fine-tuned models can be deleted.", "model_not_deletable");
        }

        await using (var transaction = await db.Database.BeginTransactionAsync(context.CancellationToken))
        {
            await db.Permissions.Where(permission => permission.ModelId == model.Id || permission.ModelId.StartsWith(model.Id + ":ckpt-step-"))
                .ExecuteDeleteAsync(context.CancellationToken);
            await db.Models.Where(row => row.Id == model.Id).ExecuteDeleteAsync(context.CancellationToken);
            db.AddIntegrationEvent(new ModelAccessChanged(model.Id, caller.ProjectId, "deleted"), time.GetUtcNow());
            await db.SaveChangesAsync(context.CancellationToken);
            await transaction.CommitAsync(context.CancellationToken);
        }

        outbox.Wake();
        return new DeleteModelResponse { ModelId = model.Id, Deleted = true };
    }

    public override async Task ReadModelArtifact(ReadModelArtifactRequest request, IServerStreamWriter<ArtifactChunk> responseStream, ServerCallContext context)
    {
        var caller = context.GetCaller();
        var model = await FindModelAsync(caller, request.ModelId, context.CancellationToken);
        if (model.CheckpointId is null)
        {
            throw PlatformException.NotFound(
                model.Backend == ModelBackends.OpenWeights
                    ? $"'{model.Id}' is an imported base model: its files are read with ReadBaseModelFile."
                    : $"'{model.Id}' is a built-in preset: its weights come with the runtime.",
                "model", "no_artifact");
        }

        await foreach (var chunk in chunks.ReadAsync(model.CheckpointId, context.CancellationToken))
        {
            await responseStream.WriteAsync(new ArtifactChunk { Data = UnsafeByteOperations.UnsafeWrap(chunk) }, context.CancellationToken);
        }
    }

    public override async Task<Model> ImportBaseModel(IAsyncStreamReader<BaseModelUpload> requestStream, ServerCallContext context) =>
        (await baseModels.ImportAsync(context.GetCaller(), requestStream, context.CancellationToken)).ToContract();

    public override async Task<BaseModelFiles> GetBaseModelFiles(GetModelRequest request, ServerCallContext context) =>
        (await baseModels.FindAsync(request.ModelId, context.CancellationToken)).ToContract();

    public override async Task ReadBaseModelFile(ReadBaseModelFileRequest request, IServerStreamWriter<ArtifactChunk> responseStream, ServerCallContext context)
    {
        await foreach (var chunk in baseModels.ReadFileAsync(request.ModelId, request.Name, context.CancellationToken))
        {
            await responseStream.WriteAsync(new ArtifactChunk { Data = UnsafeByteOperations.UnsafeWrap(chunk) }, context.CancellationToken);
        }
    }

    public override Task<Contracts.Datasets.ModelFit> GetTrainingFileFit(GetTrainingFileFitRequest request, ServerCallContext context) =>
        fileFits.ForReportAsync(context.GetCaller(), request.FileId, request.Model, context.CancellationToken);

    public override async Task<ModelPermissionList> CreateModelPermissions(CreateModelPermissionsRequest request, ServerCallContext context)
    {
        var caller = context.GetCaller();
        var model = await FindOwnedShareableAsync(caller, request.ModelId, context.CancellationToken);
        ModelCatalog.RequirePublished(model, "model");
        var projects = request.ProjectIds.Select(id => id.Trim()).Where(id => id.Length > 0).Distinct().ToList();
        if (projects.Count == 0)
        {
            throw PlatformException.InvalidArgument("'project_ids' must name at least one project.", "project_ids");
        }

        if (projects.Contains(caller.ProjectId))
        {
            throw PlatformException.InvalidArgument("A project already owns its models; grant them to other projects.", "project_ids");
        }

        var existing = await db.Permissions.Where(permission => permission.ModelId == model.Id && projects.Contains(permission.ProjectId)).ToListAsync(context.CancellationToken);
        var now = time.GetUtcNow();
        var created = projects.Where(project => existing.All(permission => permission.ProjectId != project)).Select(project => new Models.ModelPermission
        {
            Id = RandomIds.WithPrefix("cp_"),
            ModelId = model.Id,
            OwnerProjectId = caller.ProjectId,
            ProjectId = project,
            CreatedAt = now,
        }).ToList();
        db.Permissions.AddRange(created);
        db.AddIntegrationEvent(new ModelAccessChanged(model.Id, caller.ProjectId, "granted"), now);
        await db.SaveChangesAsync(context.CancellationToken);
        outbox.Wake();
        var response = new ModelPermissionList();
        response.Permissions.AddRange(existing.Concat(created).OrderBy(permission => permission.CreatedAt).Select(ToContract));
        return response;
    }

    public override async Task<ModelPermissionList> ListModelPermissions(ListModelPermissionsRequest request, ServerCallContext context)
    {
        var caller = context.GetCaller();
        var model = await FindOwnedShareableAsync(caller, request.ModelId, context.CancellationToken);
        var limit = PageSizes.Of(request.Limit, 10);
        var query = db.Permissions.AsNoTracking().Where(permission => permission.ModelId == model.Id);
        if (!string.IsNullOrEmpty(request.ProjectId))
        {
            query = query.Where(permission => permission.ProjectId == request.ProjectId);
        }

        if (!string.IsNullOrEmpty(request.After))
        {
            query = query.Where(permission => string.Compare(permission.Id, request.After) > 0);
        }

        var page = await query.OrderBy(permission => permission.Id).Take(limit + 1).ToListAsync(context.CancellationToken);
        var response = new ModelPermissionList { HasMore = page.Count > limit };
        response.Permissions.AddRange(page.Take(limit).Select(ToContract));
        return response;
    }

    public override async Task<DeleteModelPermissionResponse> DeleteModelPermission(DeleteModelPermissionRequest request, ServerCallContext context)
    {
        var caller = context.GetCaller();
        var model = await FindOwnedShareableAsync(caller, request.ModelId, context.CancellationToken);
        await using (var transaction = await db.Database.BeginTransactionAsync(context.CancellationToken))
        {
            var deleted = await db.Permissions.Where(permission => permission.Id == request.PermissionId && permission.ModelId == model.Id)
                .ExecuteDeleteAsync(context.CancellationToken);
            if (deleted == 0)
            {
                throw PlatformException.NotFound($"No permission '{request.PermissionId}' on '{model.Id}'.", "permission_id");
            }

            db.AddIntegrationEvent(new ModelAccessChanged(model.Id, caller.ProjectId, "revoked"), time.GetUtcNow());
            await db.SaveChangesAsync(context.CancellationToken);
            await transaction.CommitAsync(context.CancellationToken);
        }

        outbox.Wake();
        return new DeleteModelPermissionResponse { PermissionId = request.PermissionId, Deleted = true };
    }

    /// <summary>How many times a user's transition is re-applied on a fresh row when a worker or the scheduler
    /// changed the job between our read and our write (each retry reads the job again; a conflict needs a concurrent
    /// writer, so a handful of rounds is plenty).</summary>
    private const int TransitionAttempts = 8;

    private async Task<ProtoJob> TransitionAsync(JobRequest request, ServerCallContext context, Func<Jobs.TrainingJob, DateTimeOffset, string> transition)
    {
        var caller = context.GetCaller();
        for (var attempt = 1; ; attempt++)
        {
            var job = await FindJobAsync(caller, request.JobId, tracking: true, context.CancellationToken);
            var now = time.GetUtcNow();
            try
            {
                events.Add(db, job.Id, transition(job, now));
            }
            catch (InvalidJobTransitionException ex)
            {
                throw PlatformException.FailedPrecondition(ex.Message, null, "invalid_state");
            }

            if (JobStatus.IsTerminal(job.Status))
            {
                db.AddIntegrationEvent(job.ToFinishedEvent(), now);
            }

            try
            {
                await db.SaveChangesAsync(context.CancellationToken);
            }
            catch (DbUpdateConcurrencyException) when (attempt < TransitionAttempts)
            {
                // The scheduler dispatched it or a worker reported on it meanwhile: that is a legal request meeting a
                // legal change, not the caller's problem. Forget what we tracked and decide again on the row as it is
                // now (the transition may have become invalid, which is then the answer).
                db.ChangeTracker.Clear();
                continue;
            }

            scheduler.Wake();
            outbox.Wake();

            return job.ToContract(now);
        }
    }

    private async Task<Jobs.TrainingJob> FindJobAsync(InternalCaller caller, string jobId, bool tracking, CancellationToken cancellationToken)
    {
        var query = tracking ? db.Jobs : db.Jobs.AsNoTracking();
        return await query.FirstOrDefaultAsync(job => job.Id == jobId && job.ProjectId == caller.ProjectId, cancellationToken)
            ?? throw PlatformException.NotFound($"Could not find fine-tuning job {jobId}.", "fine_tuning_job_id", "fine_tuning_job_not_found");
    }

    private Task<VisibleModel> FindModelAsync(InternalCaller caller, string modelId, CancellationToken cancellationToken) =>
        catalog.GetAsync(caller.ProjectId, modelId, cancellationToken);

    private async Task<VisibleModel> FindOwnedShareableAsync(InternalCaller caller, string modelId, CancellationToken cancellationToken)
    {
        var model = await FindModelAsync(caller, modelId, cancellationToken);
        if (model.Access != ModelAccess.Owner || model.Kind == ModelKinds.Base)
        {
            throw PlatformException.PermissionDenied($"Only the project that owns '{model.Id}' can manage who may use it.", "not_owner");
        }

        return model;
    }

    private static Contracts.Training.ModelPermission ToContract(Models.ModelPermission permission) => new()
    {
        Id = permission.Id,
        ModelId = permission.ModelId,
        ProjectId = permission.ProjectId,
        CreatedAt = permission.CreatedAt.ToUnixTimeSeconds(),
    };

    private static void RequireAdmin(InternalCaller caller)
    {
        if (caller.Role != Roles.Admin)
        {
            throw PlatformException.PermissionDenied("Project quotas are managed by the platform team (an admin key).");
        }
    }
}
