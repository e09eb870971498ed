using System.Text.Json;
using System.Text.Json.Nodes;
using FineTunePlatform.Contracts.Training;

namespace FineTunePlatform.Gateway.OpenAI;

/// <summary>
/// OpenAI's fine-tuning objects (fine_tuning.job, .event, .checkpoint, checkpoint.permission), written field for
/// field as JSON nodes: the .NET SDK reads them strictly, and nullable fields must be present as null.
/// </summary>
public static class FineTuningObjects
{
    public static JsonObject Job(TrainingJob job)
    {
        var hyperparameters = new JsonObject
        {
            ["n_epochs"] = job.NEpochs,
            ["batch_size"] = job.BatchSize,
            ["learning_rate_multiplier"] = job.LearningRateMultiplier,
        };
        if (job.Method == FineTuningMethods.Dpo)
        {
            hyperparameters["beta"] = job.Beta;
        }

        // Our additions for open-weight bases, beside OpenAI's: the LoRA adapter the job trains.
        if (job.Lora is { } lora)
        {
            hyperparameters["lora_rank"] = lora.Rank;
            hyperparameters["lora_alpha"] = lora.Alpha;
            hyperparameters["lora_dropout"] = lora.Dropout;
            hyperparameters["lora_target_modules"] = new JsonArray([.. lora.TargetModules.Select(module => (JsonNode?)module)]);
        }

        return new JsonObject
        {
            ["object"] = "fine_tuning.job",
            ["id"] = job.Id,
            ["model"] = job.Model,
            ["created_at"] = job.CreatedAt,
            ["finished_at"] = job.FinishedAt == 0 ? null : job.FinishedAt,
            ["fine_tuned_model"] = NullIfEmpty(job.FineTunedModel),
            ["organization_id"] = job.ProjectId,
            ["result_files"] = new JsonArray([.. job.ResultFiles.Select(file => (JsonNode?)file)]),
            ["status"] = job.Status,
            ["validation_file"] = NullIfEmpty(job.ValidationFile),
            ["training_file"] = job.TrainingFile,
            ["hyperparameters"] = hyperparameters.DeepClone(),
            ["trained_tokens"] = job.TrainedTokens == 0 && job.Status != JobStatus.Succeeded ? null : job.TrainedTokens,
            ["error"] = job.Error is null ? null : new JsonObject
            {
                ["code"] = job.Error.Code,
                ["message"] = job.Error.Message,
                ["param"] = NullIfEmpty(job.Error.Param),
            },
            ["user_provided_suffix"] = NullIfEmpty(job.Suffix),
            ["seed"] = job.Seed,
            ["estimated_finish"] = job.EstimatedFinish == 0 ? null : job.EstimatedFinish,
            ["integrations"] = new JsonArray(),
            ["metadata"] = job.Metadata.Count == 0 ? null : OpenAIList.Metadata(job.Metadata),
            ["method"] = new JsonObject
            {
                ["type"] = job.Method,
                [job.Method] = new JsonObject { ["hyperparameters"] = hyperparameters },
            },
        };
    }

    public static JsonObject Event(JobEvent jobEvent) => new()
    {
        ["object"] = "fine_tuning.job.event",
        ["id"] = jobEvent.Id,
        ["created_at"] = jobEvent.CreatedAt,
        ["level"] = jobEvent.Level,
        ["message"] = jobEvent.Message,
        ["type"] = jobEvent.Type,
        ["data"] = JsonNode.Parse(string.IsNullOrEmpty(jobEvent.DataJson) ? "{}" : jobEvent.DataJson),
    };

    public static JsonObject Checkpoint(Checkpoint checkpoint) => new()
    {
        ["object"] = "fine_tuning.job.checkpoint",
        ["id"] = checkpoint.Id,
        ["created_at"] = checkpoint.CreatedAt,
        ["fine_tuned_model_checkpoint"] = checkpoint.ModelId,
        ["step_number"] = checkpoint.Step,
        ["fine_tuning_job_id"] = checkpoint.JobId,
        ["metrics"] = Metrics(checkpoint.Metrics),
    };

    /// <summary>Each metric is optional and not nullable in OpenAI's document: one not measured (no validation file) is left out.</summary>
    private static JsonObject Metrics(CheckpointMetrics metrics)
    {
        var result = new JsonObject { ["step"] = metrics.Step };
        void Add(string name, bool has, double value)
        {
            if (has)
            {
                result[name] = value;
            }
        }

        Add("train_loss", metrics.HasTrainLoss, metrics.TrainLoss);
        Add("train_mean_token_accuracy", metrics.HasTrainMeanTokenAccuracy, metrics.TrainMeanTokenAccuracy);
        Add("valid_loss", metrics.HasValidLoss, metrics.ValidLoss);
        Add("valid_mean_token_accuracy", metrics.HasValidMeanTokenAccuracy, metrics.ValidMeanTokenAccuracy);
        Add("full_valid_loss", metrics.HasFullValidLoss, metrics.FullValidLoss);
        Add("full_valid_mean_token_accuracy", metrics.HasFullValidMeanTokenAccuracy, metrics.FullValidMeanTokenAccuracy);
        return result;
    }

    public static JsonObject Permission(ModelPermission permission) => new()
    {
        ["object"] = "checkpoint.permission",
        ["id"] = permission.Id,
        ["created_at"] = permission.CreatedAt,
        ["project_id"] = permission.ProjectId,
    };

    private static string? NullIfEmpty(string value) => value.Length == 0 ? null : value;
}

/// <summary>
/// Reads OpenAI's create-job body (method with its hyperparameters, or the deprecated top-level hyperparameters;
/// "auto" or a number for each) into the contract, naming the offending `param` for anything malformed.
/// </summary>
public static class CreateJobRequestReader
{
    public static CreateJobRequest Read(JsonElement body)
    {
        if (body.ValueKind != JsonValueKind.Object)
        {
            throw new InvalidRequestException("The request body must be a JSON object.", "body");
        }

        var request = new CreateJobRequest
        {
            Model = RequestBody.String(body, "model") ?? "",
            TrainingFile = RequestBody.String(body, "training_file") ?? "",
            ValidationFile = RequestBody.String(body, "validation_file") ?? "",
            Suffix = RequestBody.String(body, "suffix") ?? "",
        };
        if (body.TryGetProperty("seed", out var seed) && seed.ValueKind != JsonValueKind.Null)
        {
            request.Seed = seed.ValueKind == JsonValueKind.Number && seed.TryGetInt32(out var value)
                ? value
                : throw new InvalidRequestException("'seed' must be an integer.", "seed");
        }

        RequestBody.ReadMetadata(body, request.Metadata);

        if (body.TryGetProperty("integrations", out var integrations) && integrations.ValueKind == JsonValueKind.Array && integrations.GetArrayLength() > 0)
        {
            throw new InvalidRequestException("Integrations (Weights and Biases) are not supported by this platform; follow the job's events instead.", "integrations");
        }

        if (body.TryGetProperty("evaluation", out var evaluation) && evaluation.ValueKind != JsonValueKind.Null)
        {
            request.Evaluation = Evaluation(evaluation);
        }

        JsonElement? hyperparameters = body.TryGetProperty("hyperparameters", out var legacy) && legacy.ValueKind == JsonValueKind.Object ? legacy : null;
        request.Method = FineTuningMethods.Supervised;
        if (body.TryGetProperty("method", out var method) && method.ValueKind != JsonValueKind.Null)
        {
            var type = method.ValueKind == JsonValueKind.Object ? RequestBody.String(method, "type", "method.type") : null;
            request.Method = type ?? throw new InvalidRequestException("'method.type' is required: 'supervised' or 'dpo'.", "method.type");
            if (method.TryGetProperty(type, out var settings) && settings.ValueKind == JsonValueKind.Object
                && settings.TryGetProperty("hyperparameters", out var methodHyperparameters) && methodHyperparameters.ValueKind == JsonValueKind.Object)
            {
                hyperparameters = methodHyperparameters;
            }
        }

        if (hyperparameters is { } values)
        {
            if (Number(values, "n_epochs") is { } epochs)
            {
                request.NEpochs = Integer(epochs, "n_epochs");
            }

            if (Number(values, "batch_size") is { } batchSize)
            {
                request.BatchSize = Integer(batchSize, "batch_size");
            }

            if (Number(values, "learning_rate_multiplier") is { } multiplier)
            {
                request.LearningRateMultiplier = multiplier;
            }

            if (Number(values, "beta") is { } beta)
            {
                request.Beta = beta;
            }

            if (Number(values, "lora_rank") is { } rank)
            {
                request.LoraRank = Integer(rank, "lora_rank");
            }

            if (Number(values, "lora_alpha") is { } alpha)
            {
                request.LoraAlpha = alpha;
            }

            if (Number(values, "lora_dropout") is { } dropout)
            {
                request.LoraDropout = dropout;
            }

            if (values.TryGetProperty("lora_target_modules", out var modules) && modules.ValueKind != JsonValueKind.Null
                && !(modules.ValueKind == JsonValueKind.String && modules.GetString() == "auto"))
            {
                if (modules.ValueKind != JsonValueKind.Array || modules.GetArrayLength() == 0 || modules.EnumerateArray().Any(module => module.ValueKind != JsonValueKind.String))
                {
                    throw new InvalidRequestException("'lora_target_modules' must be \"auto\" or a non-empty array of module names such as \"q_proj\".", "hyperparameters.lora_target_modules");
                }

                request.LoraTargetModules.AddRange(modules.EnumerateArray().Select(module => module.GetString()!));
            }
        }

        return request;
    }

    /// <summary>
    /// Our addition to the create request: {"eval_id", "data_source" (a completions data source without a model),
    /// "min_improvement" (default 0)} — the evaluation service checks the eval and data source before the job is made.
    /// </summary>
    private static JobEvaluation Evaluation(JsonElement evaluation)
    {
        if (evaluation.ValueKind != JsonValueKind.Object)
        {
            throw new InvalidRequestException("'evaluation' must be an object: {\"eval_id\": ..., \"data_source\": {...}, \"min_improvement\": 0}.", "evaluation");
        }

        var request = new JobEvaluation
        {
            EvalId = RequestBody.String(evaluation, "eval_id", "evaluation.eval_id") ?? throw new InvalidRequestException("'evaluation.eval_id' is required.", "evaluation.eval_id"),
            DataSourceJson = RequestBody.RawJson(evaluation, "data_source", JsonValueKind.Object, "evaluation.data_source"),
        };
        if (evaluation.TryGetProperty("min_improvement", out var minImprovement) && minImprovement.ValueKind != JsonValueKind.Null)
        {
            request.MinImprovement = minImprovement.ValueKind == JsonValueKind.Number
                ? minImprovement.GetDouble()
                : throw new InvalidRequestException("'min_improvement' must be a number between -1 and 1.", "evaluation.min_improvement");
        }

        return request;
    }

    /// <summary>A number, or null for "auto" and absent.</summary>
    private static double? Number(JsonElement hyperparameters, string name)
    {
        if (!hyperparameters.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null
            || (value.ValueKind == JsonValueKind.String && value.GetString() == "auto"))
        {
            return null;
        }

        return value.ValueKind == JsonValueKind.Number
            ? value.GetDouble()
            : throw new InvalidRequestException($"'{name}' must be \"auto\" or a number.", $"hyperparameters.{name}");
    }

    private static int Integer(double value, string name) =>
        value == Math.Floor(value) && value is >= int.MinValue and <= int.MaxValue
            ? (int)value
            : throw new InvalidRequestException($"'{name}' must be \"auto\" or an integer.", $"hyperparameters.{name}");
}
