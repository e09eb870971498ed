using System.Text.Json;
using FineTunePlatform.Contracts.Datasets;
using FineTunePlatform.Contracts.Training;
using FineTunePlatform.ServiceDefaults;
using FineTunePlatform.Training.Infrastructure;
using FineTunePlatform.Training.Models;
using FineTunePlatform.Training.Scheduling;
using Grpc.Core;
using Microsoft.EntityFrameworkCore;

namespace FineTunePlatform.Training.Jobs;

/// <summary>
/// Turns a create request into a queued job: checks every field (a 400 naming the `param` for each mistake), checks
/// the files with the dataset service (they must belong to the project, be validated without errors and match the
/// method's format) and the base model with the catalog, then resolves "auto" hyperparameters and records them.
/// </summary>
public sealed class JobCreator(
    TrainingDbContext db,
    ModelCatalog catalog,
    DatasetService.DatasetServiceClient datasets,
    TrainingFileFits fits,
    JobEventLog events,
    SchedulerSignal scheduler,
    TimeProvider time)
{
    public async Task<TrainingJob> CreateAsync(InternalCaller caller, CreateJobRequest request, CancellationToken cancellationToken)
    {
        var method = string.IsNullOrEmpty(request.Method) ? FineTuningMethods.Supervised : request.Method;
        switch (method)
        {
            case FineTuningMethods.Supervised:
                if (request.HasBeta)
                {
                    throw PlatformException.InvalidArgument("'beta' applies to the 'dpo' method only.", "hyperparameters.beta");
                }

                break;
            case FineTuningMethods.Dpo:
                if (request.HasBeta && !(request.Beta > 0 && request.Beta <= 2))
                {
                    throw PlatformException.InvalidArgument("'beta' must be greater than 0 and at most 2.", "hyperparameters.beta");
                }

                break;
            case "reinforcement":
                throw PlatformException.InvalidArgument(
                    "The 'reinforcement' method is not supported by this platform; use 'supervised'.", "method", "unsupported_method");
            default:
                throw PlatformException.InvalidArgument($"Invalid method '{method}'. Expected 'supervised' or 'dpo'.", "method");
        }

        CheckHyperparameters(request);
        var suffix = CheckSuffix(request.Suffix);
        var metadata = CheckMetadata(request.Metadata);
        if (request.HasSeed && request.Seed < 0)
        {
            throw PlatformException.InvalidArgument("'seed' must be a non-negative integer.", "seed");
        }

        if (string.IsNullOrWhiteSpace(request.Model))
        {
            throw PlatformException.InvalidArgument("'model' is required.", "model");
        }

        var baseModel = await catalog.FindAsync(caller.ProjectId, request.Model, cancellationToken)
            ?? throw PlatformException.InvalidArgument(
                $"Model '{request.Model}' does not exist or is not available for fine-tuning to this project.", "model", "model_not_available");
        ModelCatalog.RequirePublished(baseModel, "model");
        var lora = await ResolveLoraAsync(request, baseModel, cancellationToken) is { } adapter
            ? adapter with { MaxTokens = fits.TrainingLength(baseModel.OpenWeightsBase!) }
            : null;
        var gated = await db.Quotas.AsNoTracking().Where(quota => quota.ProjectId == caller.ProjectId).Select(quota => quota.RequireEvaluation).FirstOrDefaultAsync(cancellationToken);
        var evaluation = CheckEvaluation(request.Evaluation, gated);

        if (string.IsNullOrWhiteSpace(request.TrainingFile))
        {
            throw PlatformException.InvalidArgument("'training_file' is required.", "training_file");
        }

        var metadataHeaders = caller.ToMetadata();
        var format = method == FineTuningMethods.Dpo ? "preference" : "chat";
        var (trainingFile, report) = await CheckFileAsync(request.TrainingFile, "training_file", format, metadataHeaders, cancellationToken);
        if (!string.IsNullOrEmpty(request.ValidationFile))
        {
            var (validationFile, _) = await CheckFileAsync(request.ValidationFile, "validation_file", format, metadataHeaders, cancellationToken);
            if (validationFile.Format != trainingFile.Format)
            {
                throw PlatformException.InvalidArgument(
                    $"The validation file is in the '{validationFile.Format}' format but the training file is '{trainingFile.Format}'.", "validation_file", "invalid_validation_file");
            }
        }

        // An open-weight model trains with its own tokenizer and template: its fit is counted here as the worker will.
        var openWeightsFit = baseModel.Backend == ModelBackends.OpenWeights
            ? await fits.GetAsync(trainingFile, baseModel, metadataHeaders, cancellationToken)
            : null;
        var auto = ResolveHyperparameters(request, baseModel, trainingFile.ExampleCount, report, openWeightsFit);
        var epochs = auto.Epochs;
        var job = new TrainingJob
        {
            Id = RandomIds.WithPrefix("ftjob-"),
            ProjectId = caller.ProjectId,
            Model = baseModel.Id,
            RootModel = baseModel.RootModel,
            TrainingFile = trainingFile.Id,
            ValidationFile = string.IsNullOrEmpty(request.ValidationFile) ? null : request.ValidationFile,
            Suffix = suffix,
            Seed = request.HasSeed ? request.Seed : Random.Shared.Next(0, int.MaxValue),
            Metadata = JsonSerializer.Serialize(metadata),
            Method = method,
            Epochs = epochs,
            BatchSize = auto.BatchSize,
            LearningRateMultiplier = auto.LearningRateMultiplier,
            Beta = method == FineTuningMethods.Dpo ? (request.HasBeta ? request.Beta : AutoBeta) : null,
            Lora = lora,
            EstimatedTokens = TokensPerEpoch(auto, report) * epochs,
            EvalId = evaluation?.EvalId,
            EvaluationDataSource = evaluation?.DataSourceJson,
            EvaluationMinImprovement = evaluation?.MinImprovement ?? 0,
            EvaluationGated = gated,
            CreatedAt = time.GetUtcNow(),
        };
        db.Jobs.Add(job);
        events.Add(db, job.Id, $"Validating training file: {job.TrainingFile}" + (job.ValidationFile is null ? "" : $" and validation file: {job.ValidationFile}"));
        events.Add(db, job.Id, $"Files validated: {trainingFile.ExampleCount} examples, {TokensPerEpoch(auto, report)} billable tokens per epoch"
            + (auto.Fit is { } counted ? $" with {counted.Model}'s tokenizer" : "") + "; "
            + $"{job.Epochs} epochs, batch size {job.BatchSize}, learning rate multiplier {job.LearningRateMultiplier}");
        events.Add(db, job.Id, $"Hyperparameters: {auto.Explanation}", data: new
        {
            n_epochs = job.Epochs,
            batch_size = job.BatchSize,
            learning_rate_multiplier = job.LearningRateMultiplier,
            lora_rank = lora?.Rank,
            lora_alpha = lora?.Alpha,
            lora_dropout = lora?.Dropout,
            lora_target_modules = lora?.TargetModules,
            auto = auto.AutoNames,
            reasons = lora is null ? auto.Reasons : [.. auto.Reasons, $"LoRA rank {lora.Rank}, alpha {lora.Alpha}, dropout {lora.Dropout} on {string.Join(", ", lora.TargetModules)}"],
        });
        if (auto.Fit is { Message.Length: > 0 } fit)
        {
            events.Add(db, job.Id, $"Training file on {fit.Model}: {fit.Message}", EventLevel.Warn, data: new
            {
                model = fit.Model,
                context_tokens = fit.ContextTokens,
                examples_truncated = fit.ExamplesTruncated,
                examples_without_learned_tokens = fit.ExamplesWithoutLearnedTokens,
                lines_without_learned_tokens = fit.LinesWithoutLearnedTokens,
            });
        }
        if (evaluation is not null)
        {
            events.Add(db, job.Id, $"When the job succeeds, eval {evaluation.EvalId} runs on {job.Model} and on the fine-tuned model"
                + (gated
                    ? $"; the model is published only if its pass rate is at least the base's{Margin(evaluation.MinImprovement)} (the project requires evaluation)"
                    : ""));
        }

                events.Add(db, job.Id, "Job enqueued");
        await db.SaveChangesAsync(cancellationToken);
        scheduler.Wake();
        return job;
    }

    /// <summary>
    /// LoRA applies to open-weight bases (the built-in presets train every weight): unset values are
    /// <see cref="LoraSettings.Default"/>. A job continuing a model tuned with LoRA trains that model's adapter further,
    /// so its rank, alpha and modules are the adapter's, and different ones are refused.
    /// </summary>
    private async Task<LoraSettings?> ResolveLoraAsync(CreateJobRequest request, VisibleModel baseModel, CancellationToken cancellationToken)
    {
        var named = request.HasLoraRank ? "lora_rank"
            : request.HasLoraAlpha ? "lora_alpha"
            : request.HasLoraDropout ? "lora_dropout"
            : request.LoraTargetModules.Count > 0 ? "lora_target_modules"
            : null;
        if (baseModel.Backend != ModelBackends.OpenWeights)
        {
            return named is null
                ? null
                : throw PlatformException.InvalidArgument(
                    $"'{named}' applies to open-weight base models (trained with LoRA); {baseModel.Id} is a built-in model, whose weights are all trained.", $"hyperparameters.{named}");
        }

        if (request.HasLoraRank && request.LoraRank is < 1 or > 256)
        {
            throw PlatformException.InvalidArgument("'lora_rank' must be between 1 and 256.", "hyperparameters.lora_rank");
        }

        if (request.HasLoraAlpha && !(request.LoraAlpha > 0 && request.LoraAlpha <= 1024))
        {
            throw PlatformException.InvalidArgument("'lora_alpha' must be greater than 0 and at most 1024.", "hyperparameters.lora_alpha");
        }

        if (request.HasLoraDropout && !(request.LoraDropout >= 0 && request.LoraDropout < 1))
        {
            throw PlatformException.InvalidArgument("'lora_dropout' must be at least 0 and less than 1.", "hyperparameters.lora_dropout");
        }

        if (request.LoraTargetModules.FirstOrDefault(module => !LoraSettings.AllModules.Contains(module)) is { } unknown)
        {
            throw PlatformException.InvalidArgument(
                $"'{unknown}' is not a linear module of this architecture; 'lora_target_modules' takes {string.Join(", ", LoraSettings.AllModules)}.", "hyperparameters.lora_target_modules");
        }

        var parent = baseModel.JobId is null
            ? null
            : await db.Jobs.AsNoTracking().Where(job => job.Id == baseModel.JobId).Select(job => job.Lora).FirstOrDefaultAsync(cancellationToken);
        var start = parent ?? LoraSettings.Default;
        var resolved = new LoraSettings(
            request.HasLoraRank ? request.LoraRank : start.Rank,
            request.HasLoraAlpha ? request.LoraAlpha : start.Alpha,
            request.HasLoraDropout ? request.LoraDropout : start.Dropout,
            request.LoraTargetModules.Count > 0 ? [.. LoraSettings.AllModules.Where(request.LoraTargetModules.Contains)] : start.TargetModules);
        if (parent is not null && (resolved.Rank != parent.Rank || resolved.Alpha != parent.Alpha || !resolved.TargetModules.SequenceEqual(parent.TargetModules)))
        {
            throw PlatformException.InvalidArgument(
                $"{baseModel.Id} was tuned with a LoRA adapter of rank {parent.Rank} and alpha {parent.Alpha} on {string.Join(", ", parent.TargetModules)}; a job continuing it trains that adapter further, so 'lora_rank', 'lora_alpha' and 'lora_target_modules' must match it or be left out.",
                $"hyperparameters.{named ?? "lora_rank"}");
        }

        return resolved;
    }

    private static JobEvaluation? CheckEvaluation(JobEvaluation? evaluation, bool required)
    {
        if (evaluation is null || string.IsNullOrEmpty(evaluation.EvalId))
        {
            return required
                ? throw PlatformException.InvalidArgument(
                    "This project requires every fine-tuning job to name an evaluation ({\"evaluation\": {\"eval_id\": ..., \"data_source\": ...}}): its model is published only when it does at least as well as its base.",
                    "evaluation", "evaluation_required")
                : null;
        }

        if (evaluation.MinImprovement is < -1 or > 1 || double.IsNaN(evaluation.MinImprovement))
        {
            throw PlatformException.InvalidArgument("'min_improvement' is a difference in pass rate, between -1 and 1.", "evaluation.min_improvement");
        }

        return string.IsNullOrEmpty(evaluation.DataSourceJson)
            ? throw PlatformException.InvalidArgument("'evaluation.data_source' is required: the completions data source to sample both models with.", "evaluation.data_source")
            : evaluation;
    }

    private static string Margin(double minImprovement) => minImprovement switch
    {
        0 => "",
        > 0 => $" plus {minImprovement.ToString("0.###", System.Globalization.CultureInfo.InvariantCulture)}",
        _ => $" minus {(-minImprovement).ToString("0.###", System.Globalization.CultureInfo.InvariantCulture)}",
    };

    /// <summary>What "auto" resolved to, why (one reason per hyperparameter), and how the file fits a built-in base's context.</summary>
    private sealed record AutoResolution(int Epochs, int BatchSize, double LearningRateMultiplier, IReadOnlyList<string> Reasons, IReadOnlyList<string> AutoNames, ModelFit? Fit)
    {
        public string Explanation => string.Join("; ", Reasons);
    }

    /// <summary>
    /// The built-in presets (and models fine-tuned from them) get the calibrated rule of <see cref="AutoHyperparameters"/>,
    /// counted with their own tokenizer from the file's report. Open-weight models are pre-trained, as OpenAI's
    /// heuristics assume, and get them, with the file counted by their own tokenizer. Either way, a file with nothing
    /// to learn on the base is refused.
    /// </summary>
    private static AutoResolution ResolveHyperparameters(CreateJobRequest request, VisibleModel baseModel, long examples, ValidationReport report, ModelFit? openWeightsFit)
    {
        var autoNames = new List<string>();
        if (!request.HasNEpochs)
        {
            autoNames.Add("n_epochs");
        }

        if (!request.HasBatchSize)
        {
            autoNames.Add("batch_size");
        }

        if (!request.HasLearningRateMultiplier)
        {
            autoNames.Add("learning_rate_multiplier");
        }

        if (LocalModels.ModelPresets.TryGet(baseModel.RootModel, out var preset))
        {
            var fit = report.ModelFits.FirstOrDefault(candidate => candidate.Model == preset.Name);
            RefuseNothingToLearn(report, baseModel, fit, examples);

            // A fine-tuned base was trained already; a preset is pre-trained when it ships weights.
            var pretrained = baseModel.Id != preset.Name || LocalModels.ModelPresets.IsPretrained(preset);
            var resolved = LocalModels.AutoHyperparameters.Resolve(preset, pretrained, Math.Max(1, examples), fit?.TokensPerEpoch ?? report.BillableTokensPerEpoch,
                request.HasNEpochs ? request.NEpochs : null, request.HasBatchSize ? request.BatchSize : null, request.HasLearningRateMultiplier ? request.LearningRateMultiplier : null);
            return new AutoResolution(resolved.Epochs, resolved.BatchSize, resolved.LearningRateMultiplier, resolved.Reasons, autoNames, fit);
        }

        RefuseNothingToLearn(report, baseModel, openWeightsFit, examples);
        var epochs = request.HasNEpochs ? request.NEpochs : Math.Max(1, report.RecommendedEpochs);
        var batch = request.HasBatchSize ? request.BatchSize : AutoBatchSize(examples);
        var rate = request.HasLearningRateMultiplier ? request.LearningRateMultiplier : AutoLearningRateMultiplier;
        return new AutoResolution(epochs, batch, rate,
        [
            request.HasNEpochs ? $"n_epochs {epochs}: as set" : $"n_epochs {epochs}: OpenAI's heuristic for {examples} examples",
            request.HasBatchSize ? $"batch_size {batch}: as set" : $"batch_size {batch}: about 0.2% of the examples",
            request.HasLearningRateMultiplier ? $"learning_rate_multiplier {rate}: as set" : $"learning_rate_multiplier {rate}: the backend's base rate",
        ], autoNames, openWeightsFit);
    }

    /// <summary>A file none of whose examples keeps an assistant token within the base's context: a job on it would "succeed" having learned nothing.</summary>
    private static void RefuseNothingToLearn(ValidationReport report, VisibleModel baseModel, ModelFit? fit, long examples)
    {
        if (fit is not null && examples > 0 && fit.ExamplesWithoutLearnedTokens >= examples)
        {
            throw PlatformException.InvalidArgument(
                $"File '{report.FileId}' has nothing to learn on {baseModel.Id}: {fit.Message} Shorten the examples (a long system prompt or early turns) or keep the answers within {fit.ContextTokens} tokens.",
                "training_file", "invalid_training_file");
        }
    }

    /// <summary>What a job is charged per epoch: counted with its base's tokenizer when the base has a fit, else the report's o200k count.</summary>
    private static long TokensPerEpoch(AutoResolution auto, ValidationReport report) => auto.Fit?.TokensPerEpoch ?? report.BillableTokensPerEpoch;

    /// <summary>OpenAI's rule of thumb for "auto": about 0.2% of the examples per batch, between 1 and 256.</summary>
    public static int AutoBatchSize(long exampleCount) => (int)Math.Clamp(Math.Ceiling(exampleCount * 0.002), 1, 256);

    /// <summary>
    /// "auto" keeps the backend's tuned base rate (the local presets' AdamW rate was chosen for them); OpenAI's
    /// 0.05..0.2 multipliers are relative to much larger models' pretraining rates and would barely move ours.
    /// </summary>
    public const double AutoLearningRateMultiplier = 1.0;

    /// <summary>DPO's β when "auto": the value the DPO paper and OpenAI's guide start from.</summary>
    public const double AutoBeta = 0.1;

    private async Task<(Contracts.Datasets.DatasetFile File, ValidationReport Report)> CheckFileAsync(
        string fileId, string param, string format, Metadata headers, CancellationToken cancellationToken)
    {
        Contracts.Datasets.DatasetFile file;
        try
        {
            file = await datasets.GetAsync(new GetFileRequest { FileId = fileId }, headers, cancellationToken: cancellationToken);
        }
        catch (RpcException ex) when (ex.StatusCode == StatusCode.NotFound)
        {
            throw PlatformException.InvalidArgument($"File '{fileId}' does not exist in this project.", param, $"invalid_{param}");
        }

        if (file.Purpose != "fine-tune")
        {
            throw PlatformException.InvalidArgument($"File '{fileId}' has purpose '{file.Purpose}'; fine-tuning needs a file uploaded with purpose 'fine-tune'.", param, $"invalid_{param}");
        }

        if (file.Status != "processed" || file.ErrorCount > 0)
        {
            throw PlatformException.InvalidArgument(
                $"File '{fileId}' is {file.Status} with {file.ErrorCount} validation errors; see GET /v1/files/{fileId}/report. {file.StatusDetails}".TrimEnd(),
                param, $"invalid_{param}");
        }

        if (file.Format != format)
        {
            var expected = format == "chat"
                ? "the supervised method trains on chat examples ({\"messages\": [...]})"
                : "the dpo method trains on preference examples ({\"input\": ..., \"preferred_output\": ..., \"non_preferred_output\": ...})";
            throw PlatformException.InvalidArgument($"File '{fileId}' is in the '{file.Format}' format; {expected}.", param, $"invalid_{param}");
        }

        var report = await datasets.GetReportAsync(new GetReportRequest { FileId = fileId }, headers, cancellationToken: cancellationToken);
        return (file, report);
    }

    private static void CheckHyperparameters(CreateJobRequest request)
    {
        if (request.HasNEpochs && request.NEpochs is < 1 or > 50)
        {
            throw PlatformException.InvalidArgument("'n_epochs' must be between 1 and 50.", "hyperparameters.n_epochs");
        }

        if (request.HasBatchSize && request.BatchSize is < 1 or > 256)
        {
            throw PlatformException.InvalidArgument("'batch_size' must be between 1 and 256.", "hyperparameters.batch_size");
        }

        if (request.HasLearningRateMultiplier && !(request.LearningRateMultiplier > 0 && request.LearningRateMultiplier <= 10))
        {
            throw PlatformException.InvalidArgument("'learning_rate_multiplier' must be greater than 0 and at most 10.", "hyperparameters.learning_rate_multiplier");
        }
    }

    private static string? CheckSuffix(string suffix)
    {
        if (string.IsNullOrEmpty(suffix))
        {
            return null;
        }

        // The suffix becomes part of a model id whose fields are separated by ':'.
        if (suffix.Length > 64 || !suffix.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.'))
        {
            throw PlatformException.InvalidArgument("'suffix' must be 1 to 64 characters of letters, digits, '-', '_' or '.'.", "suffix");
        }

        return suffix;
    }

    private static Dictionary<string, string> CheckMetadata(IDictionary<string, string> metadata)
    {
        MetadataLimits.Check(metadata);
        return new Dictionary<string, string>(metadata);
    }
}
