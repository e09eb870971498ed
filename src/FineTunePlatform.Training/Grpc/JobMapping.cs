using System.Text.Json;
using FineTunePlatform.Contracts.IntegrationEvents;
using FineTunePlatform.Contracts.Training;
using FineTunePlatform.Training.Jobs;
using FineTunePlatform.Training.Models;
using ProtoCheckpoint = FineTunePlatform.Contracts.Training.Checkpoint;
using ProtoJob = FineTunePlatform.Contracts.Training.TrainingJob;
using ProtoModel = FineTunePlatform.Contracts.Training.Model;
using TrainingJob = FineTunePlatform.Training.Jobs.TrainingJob;

namespace FineTunePlatform.Training.Grpc;

/// <summary>Domain to contract, in one place.</summary>
internal static class JobMapping
{
    public static ProtoJob ToContract(this TrainingJob job, DateTimeOffset now)
    {
        var contract = new ProtoJob
        {
            Id = job.Id,
            ProjectId = job.ProjectId,
            Model = job.Model,
            TrainingFile = job.TrainingFile,
            ValidationFile = job.ValidationFile ?? "",
            Suffix = job.Suffix ?? "",
            Seed = job.Seed,
            Method = job.Method,
            NEpochs = job.Epochs,
            BatchSize = job.BatchSize,
            LearningRateMultiplier = job.LearningRateMultiplier,
            Beta = job.Beta ?? 0,
            Status = job.Status,
            CreatedAt = job.CreatedAt.ToUnixTimeSeconds(),
            FinishedAt = job.FinishedAt?.ToUnixTimeSeconds() ?? 0,
            EstimatedFinish = EstimatedFinish(job, now),
            FineTunedModel = job.FineTunedModel ?? "",
            TrainedTokens = job.TrainedTokens ?? 0,
            Attempt = job.Attempt,
        };
        contract.Metadata.Add(JsonSerializer.Deserialize<Dictionary<string, string>>(job.Metadata) ?? []);
        if (job.ResultFile is not null)
        {
            contract.ResultFiles.Add(job.ResultFile);
        }

        if (job.Lora is { } lora)
        {
            contract.Lora = new LoraHyperparameters { Rank = lora.Rank, Alpha = lora.Alpha, Dropout = lora.Dropout, MaxTokens = lora.MaxTokens };
            contract.Lora.TargetModules.AddRange(lora.TargetModules);
        }

        if (job.EvalId is not null)
        {
            contract.Evaluation = new JobEvaluation
            {
                EvalId = job.EvalId,
                DataSourceJson = job.EvaluationDataSource ?? "",
                MinImprovement = job.EvaluationMinImprovement,
                Gated = job.EvaluationGated,
                Verdict = job.EvaluationVerdict ?? "",
            };
        }

        if (job.ErrorCode is not null)
        {
            contract.Error = new JobError { Code = job.ErrorCode, Message = job.ErrorMessage ?? "", Param = job.ErrorParam ?? "" };
        }

        return contract;
    }

    /// <summary>
    /// The bus's news of a finished job (with the evaluation a succeeded job asked for). It occurred when the job
    /// finished, however often it is announced: usage records a job's training tokens on that day, once.
    /// </summary>
    public static TrainingJobFinished ToFinishedEvent(this TrainingJob job) => new(job.Id, job.ProjectId, job.Status, job.FineTunedModel, job.Model)
    {
        OccurredAt = job.FinishedAt ?? DateTimeOffset.UtcNow,
        TrainedTokens = job.TrainedTokens ?? 0,
        Evaluation = job is { Status: JobStatus.Succeeded, EvalId: not null }
            ? new JobEvaluationRequest(job.EvalId, job.EvaluationDataSource!, job.EvaluationMinImprovement)
            : null,
    };

    /// <summary>
    /// Only while running, and never in the past: the OpenAI SDK's WaitForCompletion sleeps until this instant, so a
    /// stale estimate would make it sleep a negative time, and a missing one makes it wait 30 seconds between polls.
    /// </summary>
    private static long EstimatedFinish(TrainingJob job, DateTimeOffset now)
    {
        if (job.Status != JobStatus.Running)
        {
            return 0;
        }

        var soonest = now.AddSeconds(2);
        var estimate = job.EstimatedFinish is { } value && value > soonest ? value : soonest;
        return estimate.ToUnixTimeSeconds();
    }

    public static Contracts.Training.JobEvent ToContract(this Jobs.JobEvent jobEvent) => new()
    {
        Id = jobEvent.Id,
        CreatedAt = jobEvent.CreatedAt.ToUnixTimeSeconds(),
        Level = jobEvent.Level,
        Message = jobEvent.Message,
        Type = jobEvent.Type,
        DataJson = jobEvent.Data,
        Sequence = jobEvent.Sequence,
    };

    public static ProtoCheckpoint ToContract(this JobCheckpoint checkpoint) => new()
    {
        Id = checkpoint.Id,
        JobId = checkpoint.JobId,
        ModelId = checkpoint.ModelId,
        Step = checkpoint.Step,
        CreatedAt = checkpoint.CreatedAt.ToUnixTimeSeconds(),
        Metrics = CheckpointMetrics.Parser.WithDiscardUnknownFields(true).ParseJson(checkpoint.Metrics),
    };

    public static ProtoModel ToContract(this VisibleModel model) => new()
    {
        Id = model.Id,
        CreatedAt = model.CreatedAt.ToUnixTimeSeconds(),
        OwnedBy = model.OwnedBy,
        Kind = model.Kind,
        Backend = model.Backend,
        BaseModel = model.BaseModel,
        Access = model.Access,
        JobId = model.JobId ?? "",
        Status = model.Status,
        RootModel = model.RootModel,
        OpenWeights = model.OpenWeightsBase is { } imported
            ? new OpenWeightsBase
            {
                Architecture = imported.Architecture,
                Parameters = imported.Parameters,
                ContextLength = imported.ContextLength,
                WeightBytes = imported.WeightBytes,
                FilesSha256 = imported.FilesSha256,
            }
            : null,
    };

    public static BaseModelFiles ToContract(this Models.BaseModel model)
    {
        var files = new BaseModelFiles { ModelId = model.Id, FilesSha256 = model.FilesSha256 };
        files.Files.AddRange(model.Files.OrderBy(file => file.Name, StringComparer.Ordinal)
            .Select(file => new Contracts.Training.BaseModelFile { Name = file.Name, Bytes = file.Bytes, Sha256 = file.Sha256 }));
        return files;
    }
}
