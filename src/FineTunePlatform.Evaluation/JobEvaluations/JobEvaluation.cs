using System.Text.Json;
using System.Text.Json.Nodes;
using FineTunePlatform.Evaluation.Evals;
using FineTunePlatform.Evaluation.Graders;
using FineTunePlatform.Evaluation.Runs;

namespace FineTunePlatform.Evaluation.JobEvaluations;

/// <summary>
/// A succeeded fine-tuning job's automatic evaluation: one run of the job's eval on the base model and one on the
/// tuned model, with the same data source. Keyed by the job, so a redelivered TrainingJobFinished creates nothing
/// twice. The <see cref="JobEvaluationMonitor"/> settles it when both runs have finished (the verdict) and publishes
/// the verdict to training; training asks again while it has no verdict, which sends it once more.
/// </summary>
public sealed class JobEvaluation
{
    public required string JobId { get; init; }

    public required string ProjectId { get; init; }

    public required string EvalId { get; init; }

    public required string BaseModel { get; init; }

    public required string TunedModel { get; init; }

    /// <summary>Null when the runs could not be created (the eval was deleted after the job started): the verdict is `failed`.</summary>
    public string? BaseRunId { get; init; }

    public string? TunedRunId { get; init; }

    public double MinImprovement { get; init; }

    public DateTimeOffset CreatedAt { get; init; }

    /// <summary>promote | reject | failed; null until both runs have finished.</summary>
    public string? Verdict { get; set; }

    public string? Summary { get; set; }

    public double? BaselinePassRate { get; set; }

    public double? CandidatePassRate { get; set; }

    public DateTimeOffset? SettledAt { get; set; }

    /// <summary>When the verdict was handed to the bus; null means it still has to be.</summary>
    public DateTimeOffset? PublishedAt { get; set; }

    /// <summary>
    /// The run data source for each of `models`: the job's data source (a completions source that names no model)
    /// with the model filled in, checked once against the eval like any run's (the model is the only difference).
    /// InvalidEvalException names the param.
    /// </summary>
    public static IReadOnlyList<string> DataSourcesFor(Eval eval, string dataSourceJson, int maxItems, params string[] models)
    {
        JsonObject dataSource;
        try
        {
            dataSource = JsonNode.Parse(dataSourceJson) as JsonObject ?? throw new InvalidEvalException("'data_source' must be an object.", "data_source");
        }
        catch (JsonException)
        {
            throw new InvalidEvalException("'data_source' is not valid JSON.", "data_source");
        }

        if (dataSource["type"]?.GetValueKind() != JsonValueKind.String || dataSource["type"]!.GetValue<string>() != "completions")
        {
            throw new InvalidEvalException("A job's evaluation samples its models: 'data_source.type' must be 'completions'.", "data_source.type");
        }

        if (dataSource.ContainsKey("model"))
        {
            throw new InvalidEvalException("Leave 'model' out: the evaluation runs once on the job's base model and once on the model it produces.", "data_source.model");
        }

        var forModels = models.Select(model =>
        {
            dataSource["model"] = model;
            return dataSource.ToJsonString();
        }).ToList();
        RunDataSource.ReadFor(eval, forModels[0], maxItems);
        return forModels;
    }
}
