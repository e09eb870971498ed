using System.Text.Json;
using System.Text.Json.Nodes;
using FineTunePlatform.Contracts.Evaluation;
using FineTunePlatform.Contracts.Training;
using FineTunePlatform.Gateway.Auth;
using FineTunePlatform.Gateway.Infrastructure;
using FineTunePlatform.Gateway.OpenAI;
using FineTunePlatform.Gateway.RateLimiting;
using Grpc.Core;
using Microsoft.EntityFrameworkCore;

namespace FineTunePlatform.Gateway.Apis;

/// <summary>
/// OpenAI's fine-tuning API (/v1/fine_tuning/*) over the training service, plus pause/resume (OpenAI has them too)
/// and our live event stream: GET .../events?stream=true as server-sent events until the job finishes, each with its
/// event id as the SSE id; `Last-Event-ID` (or `after`) resumes after that event.
/// </summary>
public static class FineTuningApi
{
    public static RouteGroupBuilder MapFineTuningApi(this IEndpointRouteBuilder app)
    {
        var fineTuning = app.MapGroup("/v1/fine_tuning");
        var jobs = fineTuning.MapGroup("/jobs");
        jobs.MapPost("", CreateJobAsync).RequireAuthorization(Policies.Member);
        jobs.MapGet("", ListJobsAsync).RequireAuthorization(Policies.Reader);
        jobs.MapGet("/{jobId}", (string jobId, TrainingService.TrainingServiceClient training, CancellationToken ct) =>
            JobAsync(training.GetJobAsync(new JobRequest { JobId = jobId }, cancellationToken: ct))).RequireAuthorization(Policies.Reader);
        jobs.MapPost("/{jobId}/cancel", (string jobId, TrainingService.TrainingServiceClient training, CancellationToken ct) =>
            JobAsync(training.CancelJobAsync(new JobRequest { JobId = jobId }, cancellationToken: ct))).RequireAuthorization(Policies.Member);
        jobs.MapPost("/{jobId}/pause", (string jobId, TrainingService.TrainingServiceClient training, CancellationToken ct) =>
            JobAsync(training.PauseJobAsync(new JobRequest { JobId = jobId }, cancellationToken: ct))).RequireAuthorization(Policies.Member);
        jobs.MapPost("/{jobId}/resume", (string jobId, TrainingService.TrainingServiceClient training, CancellationToken ct) =>
            JobAsync(training.ResumeJobAsync(new JobRequest { JobId = jobId }, cancellationToken: ct))).RequireAuthorization(Policies.Member);
        jobs.MapGet("/{jobId}/events", ListOrStreamEventsAsync).RequireAuthorization(Policies.Reader);
        jobs.MapGet("/{jobId}/checkpoints", ListCheckpointsAsync).RequireAuthorization(Policies.Reader);

        // Sharing (OpenAI's checkpoint permissions; a fine-tuned model's id works as well as a checkpoint's).
        var permissions = fineTuning.MapGroup("/checkpoints/{modelId}/permissions").RequireAuthorization(Policies.Owner);
        permissions.MapPost("", CreatePermissionsAsync);
        permissions.MapGet("", ListPermissionsAsync);
        permissions.MapDelete("/{permissionId}", async (string modelId, string permissionId, TrainingService.TrainingServiceClient training, CancellationToken ct) =>
        {
            var deleted = await training.DeleteModelPermissionAsync(new DeleteModelPermissionRequest { ModelId = modelId, PermissionId = permissionId }, cancellationToken: ct);
            return Results.Json(new JsonObject { ["object"] = "checkpoint.permission", ["id"] = deleted.PermissionId, ["deleted"] = deleted.Deleted });
        });
        return fineTuning;
    }

    private static async Task<IResult> CreateJobAsync(HttpRequest request, TrainingService.TrainingServiceClient training, EvaluationService.EvaluationServiceClient evaluation, CancellationToken ct)
    {
        var create = CreateJobRequestReader.Read(await RequestBody.ReadObjectAsync(request, ct));
        if (create.Evaluation is { } automatic)
        {
            await evaluation.ValidateJobEvaluationAsync(new ValidateJobEvaluationRequest { EvalId = automatic.EvalId, DataSourceJson = automatic.DataSourceJson }, cancellationToken: ct);
        }

        return await JobAsync(training.CreateJobAsync(create, cancellationToken: ct));
    }

    /// <summary>A training-service call that answers with a job, as OpenAI's fine_tuning.job.</summary>
    private static async Task<IResult> JobAsync(AsyncUnaryCall<TrainingJob> call) => Results.Json(FineTuningObjects.Job(await call));

    private static async Task<IResult> ListJobsAsync(HttpRequest request, TrainingService.TrainingServiceClient training, CancellationToken ct)
    {
        var list = new ListJobsRequest { After = request.Query["after"].ToString(), Limit = OpenAIList.Limit(request) };
        foreach (var (key, value) in request.Query)
        {
            // metadata[key]=value, as OpenAI's list filters are sent.
            if (key.StartsWith("metadata[", StringComparison.Ordinal) && key.EndsWith(']'))
            {
                list.Metadata[key["metadata[".Length..^1]] = value.ToString();
            }
        }

        var response = await training.ListJobsAsync(list, cancellationToken: ct);
        return Results.Json(OpenAIList.Of(response.Jobs.Select(FineTuningObjects.Job), response.HasMore));
    }

    private static async Task ListOrStreamEventsAsync(string jobId, HttpContext context, TrainingService.TrainingServiceClient training, ConcurrentStreams streams)
    {
        var request = context.Request;
        var ct = context.RequestAborted;
        if (!string.Equals(request.Query["stream"], "true", StringComparison.OrdinalIgnoreCase))
        {
            var response = await training.ListJobEventsAsync(new ListJobEventsRequest { JobId = jobId, After = request.Query["after"].ToString(), Limit = OpenAIList.Limit(request) }, cancellationToken: ct);
            await Results.Json(OpenAIList.Of(response.Events.Select(FineTuningObjects.Event), response.HasMore)).ExecuteAsync(context);
            return;
        }

        // A stream holds a connection and a gRPC call for as long as the job runs: bounded per key, like rate limits.
        using var lease = streams.TryAcquire(context.Features.Get<KeyIdentity>()!.KeyId);
        if (lease is null)
        {
            await ConcurrentStreams.TooMany().ExecuteAsync(context);
            return;
        }

        // Each event goes out with its id, so a client that lost the connection (or the gateway it was on) reconnects to
        // any gateway with Last-Event-ID, as EventSource does, and gets what followed it: nothing twice, nothing missed.
        var resumeAfter = request.Headers["Last-Event-ID"].ToString() is { Length: > 0 } lastEventId ? lastEventId : request.Query["after"].ToString();
        using var watch = training.WatchJobEvents(new WatchJobEventsRequest { JobId = jobId, AfterEventId = resumeAfter }, cancellationToken: ct);
        // The first read surfaces a missing job as a 404 before any SSE header is written.
        var hasFirst = await watch.ResponseStream.MoveNext(ct);
        context.Response.ContentType = "text/event-stream";
        context.Response.Headers.CacheControl = "no-cache";
        if (hasFirst)
        {
            do
            {
                var jobEvent = watch.ResponseStream.Current;
                await context.Response.WriteAsync($"id: {jobEvent.Id}\ndata: {FineTuningObjects.Event(jobEvent).ToJsonString()}\n\n", ct);
                await context.Response.Body.FlushAsync(ct);
            }
            while (await watch.ResponseStream.MoveNext(ct));
        }

        await context.Response.WriteAsync("data: [DONE]\n\n", ct);
    }

    private static async Task<IResult> ListCheckpointsAsync(string jobId, HttpRequest request, TrainingService.TrainingServiceClient training, CancellationToken ct)
    {
        var response = await training.ListCheckpointsAsync(new ListCheckpointsRequest { JobId = jobId, After = request.Query["after"].ToString(), Limit = OpenAIList.Limit(request) }, cancellationToken: ct);
        return Results.Json(OpenAIList.Of(response.Checkpoints.Select(FineTuningObjects.Checkpoint), response.HasMore, withCursorIds: true));
    }

    private static async Task<IResult> CreatePermissionsAsync(string modelId, HttpRequest request, TrainingService.TrainingServiceClient training, GatewayDbContext db, CancellationToken ct)
    {
        var body = await RequestBody.ReadObjectAsync(request, ct);
        if (!body.TryGetProperty("project_ids", out var projects) || projects.ValueKind != JsonValueKind.Array
            || projects.EnumerateArray().Any(project => project.ValueKind != JsonValueKind.String))
        {
            return OpenAIErrors.BadRequest("'project_ids' must be an array of project ids.", "project_ids");
        }

        // Projects are the gateway's: a grant to one that does not exist would be kept and never used.
        var projectIds = projects.EnumerateArray().Select(project => project.GetString()!.Trim()).Where(id => id.Length > 0).Distinct().ToList();
        // The platform team's project holds only platform-admin keys: a grant to it would hand a team's model to
        // every admin key, which is not what sharing between teams is for.
        if (projectIds.Contains(Project.PlatformProjectId))
        {
            return OpenAIErrors.BadRequest($"Models cannot be shared with the platform team's project '{Project.PlatformProjectId}'.", "project_ids");
        }

        var known = await db.Projects.Where(project => projectIds.Contains(project.Id)).Select(project => project.Id).ToListAsync(ct);
        if (projectIds.Except(known).FirstOrDefault() is { } unknown)
        {
            return OpenAIErrors.BadRequest($"No project with id '{unknown}'.", "project_ids");
        }

        var create = new CreateModelPermissionsRequest { ModelId = modelId };
        create.ProjectIds.AddRange(projectIds);
        var response = await training.CreateModelPermissionsAsync(create, cancellationToken: ct);
        return Results.Json(OpenAIList.Of(response.Permissions.Select(FineTuningObjects.Permission), response.HasMore, withCursorIds: true));
    }

    private static async Task<IResult> ListPermissionsAsync(string modelId, HttpRequest request, TrainingService.TrainingServiceClient training, CancellationToken ct)
    {
        var response = await training.ListModelPermissionsAsync(new ListModelPermissionsRequest
        {
            ModelId = modelId, ProjectId = request.Query["project_id"].ToString(), After = request.Query["after"].ToString(), Limit = OpenAIList.Limit(request),
        }, cancellationToken: ct);
        return Results.Json(OpenAIList.Of(response.Permissions.Select(FineTuningObjects.Permission), response.HasMore, withCursorIds: true));
    }
}
