using System.Text.Json.Serialization;
using FineTunePlatform.Contracts.Training;
using FineTunePlatform.Gateway.Auth;
using FineTunePlatform.Gateway.Infrastructure;
using FineTunePlatform.Gateway.OpenAI;
using Microsoft.EntityFrameworkCore;
using Npgsql;

namespace FineTunePlatform.Gateway.Apis;

/// <summary>The platform team's API: projects and their keys, imported base models. Behind platform-admin keys only.</summary>
public static class AdminApi
{
    public static RouteGroupBuilder MapAdminApi(this IEndpointRouteBuilder app)
    {
        var admin = app.MapGroup("/admin/v1").RequireAuthorization(Policies.PlatformAdmin);
        admin.MapPost("/projects", CreateProject);
        admin.MapGet("/projects", ListProjects);
        admin.MapPost("/projects/{projectId}/keys", async (string projectId, HttpRequest body, GatewayDbContext db, TimeProvider time, CancellationToken ct) =>
            await CreateKeyAsync(projectId, await RequestBody.ReadAsync<CreateKeyRequest>(body, ct), db, time, ct));
        admin.MapGet("/projects/{projectId}/keys", ListKeysAsync);
        admin.MapPost("/projects/{projectId}/keys/{keyId}/revoke", RevokeKeyAsync);
        admin.MapPost("/projects/{projectId}/limits", SetLimits);
        admin.MapPost("/projects/{projectId}/keys/{keyId}/limits", SetKeyLimitsAsync);
        admin.MapPost("/projects/{projectId}/training-quota", SetTrainingQuotaAsync);
        // A project that does not exist is a 404 here as for the POST (the training service alone would answer defaults).
        admin.MapGet("/projects/{projectId}/training-quota", async (string projectId, GatewayDbContext db, TrainingService.TrainingServiceClient training, CancellationToken ct) =>
            await db.Projects.AnyAsync(candidate => candidate.Id == projectId, ct)
                ? Results.Ok(TrainingQuotaResponse.From(await training.GetProjectQuotaAsync(new GetProjectQuotaRequest { ProjectId = projectId }, cancellationToken: ct)))
                : OpenAIErrors.NotFound($"No project with id '{projectId}'.", "project_id"));
        // Operators' health: every check with its description and error text, which the public /health withholds.
        admin.MapHealthChecks("/health", new Microsoft.AspNetCore.Diagnostics.HealthChecks.HealthCheckOptions { ResponseWriter = HealthResponseWriter.WriteDetailsAsync });
        admin.MapGet("/projects/{projectId}/usage", (string projectId, GatewayDbContext db, CancellationToken ct) => UsageApi.ListAsync(db, projectId, ct));
        admin.MapPost("/models", BaseModelImport.ImportAsync);
        // An imported base (the training service refuses one that jobs or models still depend on: 400 model_in_use).
        admin.MapDelete("/models/{**modelId}", async (string modelId, TrainingService.TrainingServiceClient training, CancellationToken ct) =>
        {
            var deleted = await training.DeleteModelAsync(new DeleteModelRequest { ModelId = modelId }, cancellationToken: ct);
            return Results.Ok(new DeletedObject(deleted.ModelId, "model", deleted.Deleted));
        });
        return admin;
    }

    public sealed record CreateProjectRequest(string? Name);

    public sealed record ProjectResponse(
        [property: JsonPropertyName("id")] string Id,
        [property: JsonPropertyName("object")] string Object,
        [property: JsonPropertyName("name")] string Name,
        [property: JsonPropertyName("created_at")] long CreatedAt)
    {
        public static ProjectResponse From(Project project) => new(project.Id, "organization.project", project.Name, project.CreatedAt.ToUnixTimeSeconds());
    }

    public sealed record CreateKeyRequest(
        [property: JsonPropertyName("name")] string? Name,
        [property: JsonPropertyName("role")] string? Role,
        [property: JsonPropertyName("expires_at")] long? ExpiresAt);

    public sealed record KeyResponse(
        [property: JsonPropertyName("id")] string Id,
        [property: JsonPropertyName("object")] string Object,
        [property: JsonPropertyName("name")] string Name,
        [property: JsonPropertyName("role")] string Role,
        [property: JsonPropertyName("redacted_value")] string RedactedValue,
        [property: JsonPropertyName("value")] string? Value,
        [property: JsonPropertyName("created_at")] long CreatedAt,
        [property: JsonPropertyName("expires_at")] long? ExpiresAt,
        [property: JsonPropertyName("last_used_at")] long? LastUsedAt,
        [property: JsonPropertyName("revoked_at")] long? RevokedAt)
    {
        public static KeyResponse From(ApiKey key, string? plaintext = null) => new(
            key.Id, "organization.project.api_key", key.Name, key.Role, key.RedactedValue, plaintext,
            key.CreatedAt.ToUnixTimeSeconds(), key.ExpiresAt?.ToUnixTimeSeconds(), key.LastUsedAt?.ToUnixTimeSeconds(), key.RevokedAt?.ToUnixTimeSeconds());
    }

    public sealed record ListResponse<T>(
        [property: JsonPropertyName("object")] string Object,
        [property: JsonPropertyName("data")] IReadOnlyList<T> Data);

    private static async Task<IResult> CreateProject(HttpRequest body, GatewayDbContext db, TimeProvider time, CancellationToken ct)
    {
        var request = await RequestBody.ReadAsync<CreateProjectRequest>(body, ct);
        var name = request.Name?.Trim();
        if (string.IsNullOrEmpty(name) || !StoredText.Fits(name, 256))
        {
            return OpenAIErrors.BadRequest("'name' is required and must be at most 256 characters, without NUL characters.", "name");
        }

        var project = new Project { Id = Project.NewId(), Name = name, CreatedAt = time.GetUtcNow() };
        db.Projects.Add(project);
        try
        {
            await db.SaveChangesAsync(ct);
        }
        catch (DbUpdateException ex) when (ex.InnerException is PostgresException { SqlState: PostgresErrorCodes.UniqueViolation })
        {
            return OpenAIErrors.Result(StatusCodes.Status409Conflict, $"A project named '{name}' already exists.", OpenAIErrors.InvalidRequestError, "name", "project_exists");
        }

        return TypedResults.Created($"/admin/v1/projects/{project.Id}", ProjectResponse.From(project));
    }

    private static async Task<IResult> ListProjects(GatewayDbContext db, CancellationToken ct)
    {
        var projects = await db.Projects.AsNoTracking().OrderBy(project => project.CreatedAt).ToListAsync(ct);
        return TypedResults.Ok(new ListResponse<ProjectResponse>("list", projects.ConvertAll(ProjectResponse.From)));
    }

    public static async Task<IResult> CreateKeyAsync(string projectId, CreateKeyRequest request, GatewayDbContext db, TimeProvider time, CancellationToken ct)
    {
        if (!await db.Projects.AnyAsync(project => project.Id == projectId, ct))
        {
            return OpenAIErrors.NotFound($"No project with id '{projectId}'.", "project_id");
        }

        var role = request.Role ?? Roles.Member;
        var allowed = projectId == Project.PlatformProjectId ? [Roles.Admin] : Roles.ProjectRoles;
        if (!allowed.Contains(role))
        {
            return OpenAIErrors.BadRequest($"'role' must be one of: {string.Join(", ", allowed)}.", "role");
        }

        var now = time.GetUtcNow();
        if (request.ExpiresAt is { } seconds && (seconds <= now.ToUnixTimeSeconds() || seconds > DateTimeOffset.MaxValue.ToUnixTimeSeconds()))
        {
            return OpenAIErrors.BadRequest("'expires_at' must be a time in the future, in Unix seconds.", "expires_at");
        }

        DateTimeOffset? expiresAt = request.ExpiresAt is { } expiry ? DateTimeOffset.FromUnixTimeSeconds(expiry) : null;

        var name = request.Name?.Trim() is { Length: > 0 } given ? given : "unnamed";
        if (!StoredText.Fits(name, 256))
        {
            return OpenAIErrors.BadRequest("'name' must be at most 256 characters, without NUL characters.", "name");
        }

        var (key, plaintext) = ApiKey.Create(projectId, name, role, now, expiresAt);
        db.ApiKeys.Add(key);
        await db.SaveChangesAsync(ct);
        return TypedResults.Created($"/admin/v1/projects/{projectId}/keys/{key.Id}", KeyResponse.From(key, plaintext));
    }

    public static async Task<IResult> ListKeysAsync(string projectId, GatewayDbContext db, CancellationToken ct)
    {
        var keys = await db.ApiKeys.AsNoTracking().Where(key => key.ProjectId == projectId).OrderBy(key => key.CreatedAt).ToListAsync(ct);
        return TypedResults.Ok(new ListResponse<KeyResponse>("list", keys.ConvertAll(key => KeyResponse.From(key))));
    }

    public sealed record LimitsRequest(
        [property: JsonPropertyName("requests_per_minute")] int? RequestsPerMinute,
        [property: JsonPropertyName("tokens_per_minute")] int? TokensPerMinute);

    /// <summary>Sets a project's rate limits (null: back to the platform default) and applies them on the next request.</summary>
    private static async Task<IResult> SetLimits(string projectId, HttpRequest body, GatewayDbContext db, ApiKeyCache keys, CancellationToken ct)
    {
        var request = await RequestBody.ReadAsync<LimitsRequest>(body, ct);
        if (LimitsRefusal(request) is { } refusal)
        {
            return refusal;
        }

        var project = await db.Projects.SingleOrDefaultAsync(candidate => candidate.Id == projectId, ct);
        if (project is null)
        {
            return OpenAIErrors.NotFound($"No project with id '{projectId}'.", "project_id");
        }

        project.RequestsPerMinute = request.RequestsPerMinute;
        project.TokensPerMinute = request.TokensPerMinute;
        await db.SaveChangesAsync(ct);
        keys.InvalidateProject(projectId);
        return TypedResults.Ok(new { id = project.Id, requests_per_minute = project.RequestsPerMinute, tokens_per_minute = project.TokensPerMinute });
    }

    /// <summary>
    /// Sets one key's own limits, enforced on top of its project's (a batch job's key kept below the interactive
    /// ones, say); null: only the project's apply. Applied on the key's next request.
    /// </summary>
    private static async Task<IResult> SetKeyLimitsAsync(string projectId, string keyId, HttpRequest body, GatewayDbContext db, ApiKeyCache keys, CancellationToken ct)
    {
        var request = await RequestBody.ReadAsync<LimitsRequest>(body, ct);
        if (LimitsRefusal(request) is { } refusal)
        {
            return refusal;
        }

        var key = await db.ApiKeys.SingleOrDefaultAsync(candidate => candidate.Id == keyId && candidate.ProjectId == projectId, ct);
        if (key is null)
        {
            return OpenAIErrors.NotFound($"No key with id '{keyId}' in project '{projectId}'.", "key_id");
        }

        key.RequestsPerMinute = request.RequestsPerMinute;
        key.TokensPerMinute = request.TokensPerMinute;
        await db.SaveChangesAsync(ct);
        keys.InvalidateKey(key.Id);
        return TypedResults.Ok(new { id = key.Id, project_id = key.ProjectId, requests_per_minute = key.RequestsPerMinute, tokens_per_minute = key.TokensPerMinute });
    }

    private static IResult? LimitsRefusal(LimitsRequest request) =>
        request.RequestsPerMinute is <= 0 || request.TokensPerMinute is <= 0
            ? OpenAIErrors.BadRequest("Limits must be positive (or null for the default).", request.RequestsPerMinute is <= 0 ? "requests_per_minute" : "tokens_per_minute")
            : null;

    public sealed record TrainingQuotaRequest(
        [property: JsonPropertyName("priority")] int? Priority,
        [property: JsonPropertyName("max_concurrent_jobs")] int? MaxConcurrentJobs,
        [property: JsonPropertyName("training_tokens_per_day")] long? TrainingTokensPerDay,
        [property: JsonPropertyName("require_evaluation")] bool? RequireEvaluation = null);

    public sealed record TrainingQuotaResponse(
        [property: JsonPropertyName("project_id")] string ProjectId,
        [property: JsonPropertyName("priority")] int Priority,
        [property: JsonPropertyName("max_concurrent_jobs")] int MaxConcurrentJobs,
        [property: JsonPropertyName("training_tokens_per_day")] long TrainingTokensPerDay,
        [property: JsonPropertyName("require_evaluation")] bool RequireEvaluation)
    {
        public static TrainingQuotaResponse From(ProjectQuota quota) => new(quota.ProjectId, quota.Priority, quota.MaxConcurrentJobs, quota.TrainingTokensPerDay, quota.RequireEvaluation);
    }

    /// <summary>
    /// Sets how the training scheduler treats a project: its priority (higher first), how many of its jobs may train
    /// at once, and how many training tokens it may start per day; and the promotion gate (`require_evaluation`: every
    /// job names an evaluation, and its model is published only when it passes). Omitted fields keep their current value.
    /// </summary>
    private static async Task<IResult> SetTrainingQuotaAsync(string projectId, HttpRequest body, GatewayDbContext db, TrainingService.TrainingServiceClient training, CancellationToken ct)
    {
        var request = await RequestBody.ReadAsync<TrainingQuotaRequest>(body, ct);
        if (request.MaxConcurrentJobs is < 0 || request.TrainingTokensPerDay is < 0)
        {
            return OpenAIErrors.BadRequest("Quotas must not be negative.", request.MaxConcurrentJobs is < 0 ? "max_concurrent_jobs" : "training_tokens_per_day");
        }

        if (!await db.Projects.AnyAsync(candidate => candidate.Id == projectId, ct))
        {
            return OpenAIErrors.NotFound($"No project with id '{projectId}'.", "project_id");
        }

        var current = await training.GetProjectQuotaAsync(new GetProjectQuotaRequest { ProjectId = projectId }, cancellationToken: ct);
        var updated = await training.SetProjectQuotaAsync(new ProjectQuota
        {
            ProjectId = projectId,
            Priority = request.Priority ?? current.Priority,
            MaxConcurrentJobs = request.MaxConcurrentJobs ?? current.MaxConcurrentJobs,
            TrainingTokensPerDay = request.TrainingTokensPerDay ?? current.TrainingTokensPerDay,
            RequireEvaluation = request.RequireEvaluation ?? current.RequireEvaluation,
        }, cancellationToken: ct);
        return TypedResults.Ok(TrainingQuotaResponse.From(updated));
    }

    public static async Task<IResult> RevokeKeyAsync(string projectId, string keyId, GatewayDbContext db, ApiKeyCache keys, TimeProvider time, CancellationToken ct)
    {
        var key = await db.ApiKeys.SingleOrDefaultAsync(candidate => candidate.Id == keyId && candidate.ProjectId == projectId, ct);
        if (key is null)
        {
            return OpenAIErrors.NotFound($"No key with id '{keyId}' in project '{projectId}'.", "key_id");
        }

        key.RevokedAt ??= time.GetUtcNow();
        await db.SaveChangesAsync(ct);
        keys.InvalidateKey(key.Id);
        return TypedResults.Ok(KeyResponse.From(key));
    }
}
