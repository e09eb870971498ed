using FineTunePlatform.LocalModels;
using FineTunePlatform.Training.Infrastructure;
using Microsoft.EntityFrameworkCore;

namespace FineTunePlatform.Training.Models;

/// <summary>How a project reaches a model.</summary>
public static class ModelAccess
{
    public const string Base = "base";
    public const string Owner = "owner";
    public const string Granted = "granted";
}

/// <summary>A model as one project sees it: a base preset or imported base, a fine-tuned model, or a checkpoint of one.</summary>
public sealed record VisibleModel(
    string Id,
    string Kind,
    string OwnedBy,
    string BaseModel,
    string RootModel,
    string Access,
    string? JobId,
    string? CheckpointId,
    DateTimeOffset CreatedAt,
    string Status)
{
    /// <summary>local (a built-in preset at the root) or open_weights (an imported base at the root).</summary>
    public string Backend { get; init; } = ModelBackends.Local;

    /// <summary>The imported base at the root of the lineage, for open_weights models.</summary>
    public BaseModel? OpenWeightsBase { get; init; }
}

/// <summary>
/// The one place that answers "which models may this project use": the built-in presets, the imported open-weight
/// bases (every project's), the fine-tuned models and checkpoints it owns, and those granted to it. Everything else is invisible (not found, never forbidden),
/// so one tenant cannot learn another's model ids.
/// </summary>
public sealed class ModelCatalog(TrainingDbContext db)
{
    public const string SystemOwner = "system";
    private static readonly DateTimeOffset PresetsCreatedAt = new(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);

    public async Task<VisibleModel?> FindAsync(string projectId, string modelId, CancellationToken cancellationToken)
    {
        if (ModelPresets.TryGet(modelId, out var preset))
        {
            return Preset(preset);
        }

        var imported = await db.BaseModels.AsNoTracking().FirstOrDefaultAsync(model => model.Id == modelId, cancellationToken);
        if (imported is not null)
        {
            return ToVisible(imported);
        }

        var model = await db.Models.AsNoTracking().FirstOrDefaultAsync(model => model.Id == modelId, cancellationToken);
        if (model is not null)
        {
            var access = await AccessAsync(projectId, model.ProjectId, model.Id, cancellationToken);
            return access is null ? null : await WithBackendAsync(await FineTunedAsync(model, access, cancellationToken), cancellationToken);
        }

        var checkpoint = await db.Checkpoints.AsNoTracking().FirstOrDefaultAsync(checkpoint => checkpoint.ModelId == modelId, cancellationToken);
        if (checkpoint is null)
        {
            return null;
        }

        // A checkpoint is reachable by its owner, and by a grant on it or on the model its job produced.
        var job = await db.Jobs.AsNoTracking().FirstAsync(job => job.Id == checkpoint.JobId, cancellationToken);
        var checkpointAccess = await AccessAsync(projectId, checkpoint.ProjectId, checkpoint.ModelId, cancellationToken)
            ?? await AccessAsync(projectId, checkpoint.ProjectId, job.OutputModelId, cancellationToken);
        if (checkpointAccess is null)
        {
            return null;
        }

        // A gated job's checkpoints are held with its model: they must not serve what the gate has not passed.
        var status = job.EvaluationGated
            ? await db.Models.AsNoTracking().Where(model => model.Id == job.OutputModelId).Select(model => model.Status).FirstOrDefaultAsync(cancellationToken)
                ?? ModelStatus.PendingEvaluation
            : ModelStatus.Published;
        return await WithBackendAsync(
            new VisibleModel(checkpoint.ModelId, ModelKinds.Checkpoint, checkpoint.ProjectId, job.Model, job.RootModel, checkpointAccess, job.Id, checkpoint.Id, checkpoint.CreatedAt, status),
            cancellationToken);
    }

    /// <summary>A model the project may use, or a 404 that does not tell an invisible model from a missing one.</summary>
    public async Task<VisibleModel> GetAsync(string projectId, string modelId, CancellationToken cancellationToken) =>
        await FindAsync(projectId, modelId, cancellationToken)
        ?? throw PlatformException.NotFound($"The model '{modelId}' does not exist or you do not have access to it.", "model", "model_not_found");

    /// <summary>An imported base as every project sees it.</summary>
    public static VisibleModel ToVisible(BaseModel model) =>
        new(model.Id, ModelKinds.Base, SystemOwner, "", model.Id, ModelAccess.Base, null, null, model.CreatedAt, ModelStatus.Published)
        {
            Backend = ModelBackends.OpenWeights,
            OpenWeightsBase = model,
        };

    /// <summary>A model tuned from an imported base runs on the open-weights runtime with that base.</summary>
    private async Task<VisibleModel> WithBackendAsync(VisibleModel model, CancellationToken cancellationToken)
    {
        if (ModelPresets.TryGet(model.RootModel, out _))
        {
            return model;
        }

        var root = await db.BaseModels.AsNoTracking().FirstOrDefaultAsync(candidate => candidate.Id == model.RootModel, cancellationToken);
        return model with { Backend = ModelBackends.OpenWeights, OpenWeightsBase = root };
    }

    /// <summary>Refuses a model held by its evaluation (pending or rejected) for uses that publish it: sharing, training on it.</summary>
    public static void RequirePublished(VisibleModel model, string param)
    {
        if (model.Status != ModelStatus.Published)
        {
            throw PlatformException.FailedPrecondition(
                $"Model '{model.Id}' is {model.Status.Replace('_', ' ')}: its project publishes a fine-tuned model only when its evaluation shows it does at least as well as its base.",
                param, "model_not_published");
        }
    }

    public async Task<IReadOnlyList<VisibleModel>> ListAsync(string projectId, CancellationToken cancellationToken)
    {
        var granted = db.Permissions.Where(permission => permission.ProjectId == projectId).Select(permission => permission.ModelId);
        var models = await db.Models.AsNoTracking()
            .Where(model => model.ProjectId == projectId || granted.Contains(model.Id))
            .Join(db.Jobs, model => model.JobId, job => job.Id, (model, job) => new { Model = model, job.RootModel })
            .OrderBy(row => row.Model.CreatedAt)
            .ToListAsync(cancellationToken);
        var imported = await db.BaseModels.AsNoTracking().OrderBy(model => model.CreatedAt).ToListAsync(cancellationToken);
        return
        [
            .. ModelPresets.All.Select(Preset),
            .. imported.Select(ToVisible),
            .. models.Select(row =>
            {
                var model = FineTuned(row.Model, row.RootModel, row.Model.ProjectId == projectId ? ModelAccess.Owner : ModelAccess.Granted);
                var root = imported.FirstOrDefault(candidate => candidate.Id == row.RootModel);
                return root is null ? model : model with { Backend = ModelBackends.OpenWeights, OpenWeightsBase = root };
            }),
        ];
    }

    private async Task<string?> AccessAsync(string projectId, string ownerProjectId, string modelId, CancellationToken cancellationToken)
    {
        if (ownerProjectId == projectId)
        {
            return ModelAccess.Owner;
        }

        var granted = await db.Permissions.AnyAsync(permission => permission.ModelId == modelId && permission.ProjectId == projectId, cancellationToken);
        return granted ? ModelAccess.Granted : null;
    }

    private async Task<VisibleModel> FineTunedAsync(FineTunedModel model, string access, CancellationToken cancellationToken)
    {
        var rootModel = await db.Jobs.AsNoTracking().Where(job => job.Id == model.JobId).Select(job => job.RootModel).FirstAsync(cancellationToken);
        return FineTuned(model, rootModel, access);
    }

    private static VisibleModel FineTuned(FineTunedModel model, string rootModel, string access) =>
        new(model.Id, ModelKinds.FineTuned, model.ProjectId, model.BaseModel, rootModel, access, model.JobId, model.CheckpointId, model.CreatedAt, model.Status);

    private static VisibleModel Preset(ModelPreset preset) =>
        new(preset.Name, ModelKinds.Base, SystemOwner, "", preset.Name, ModelAccess.Base, null, null, PresetsCreatedAt, ModelStatus.Published);
}
