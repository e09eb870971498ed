using System.Text.Json.Nodes;
using FineTunePlatform.Contracts.Evaluation;

namespace FineTunePlatform.Gateway.OpenAI;

/// <summary>
/// OpenAI's eval objects (eval, eval.run, eval.run.output_item, and the deleted answers), field for field. The
/// open-ended parts (testing criteria, data sources, results, samples) arrive from the evaluation service as
/// canonical JSON and are embedded as they are.
/// </summary>
public static class EvalObjects
{
    public static JsonObject Eval(Eval eval) => new()
    {
        ["object"] = "eval",
        ["id"] = eval.Id,
        ["name"] = eval.Name,
        ["data_source_config"] = JsonNode.Parse(eval.DataSourceConfigJson),
        ["testing_criteria"] = JsonNode.Parse(eval.TestingCriteriaJson),
        ["created_at"] = eval.CreatedAt,
        ["metadata"] = OpenAIList.Metadata(eval.Metadata),
    };

    public static JsonObject Run(EvalRun run, string gatewayBaseUrl) => new()
    {
        ["object"] = "eval.run",
        ["id"] = run.Id,
        ["eval_id"] = run.EvalId,
        ["name"] = run.Name,
        ["status"] = run.Status,
        // Required and a string in OpenAI's document: a run that samples no model (jsonl) has the empty name.
        ["model"] = run.Model,
        ["data_source"] = JsonNode.Parse(run.DataSourceJson),
        ["created_at"] = run.CreatedAt,
        ["metadata"] = OpenAIList.Metadata(run.Metadata),
        // OpenAI links its dashboard; ours is the run's output items in this API.
        ["report_url"] = $"{gatewayBaseUrl}/v1/evals/{run.EvalId}/runs/{run.Id}/output_items",
        ["error"] = run.Error is null ? null : new JsonObject { ["code"] = run.Error.Code, ["message"] = run.Error.Message },
        ["result_counts"] = new JsonObject
        {
            ["total"] = run.ResultCounts.Total,
            ["errored"] = run.ResultCounts.Errored,
            ["failed"] = run.ResultCounts.Failed,
            ["passed"] = run.ResultCounts.Passed,
        },
        ["per_model_usage"] = new JsonArray([.. run.PerModelUsage.Select(usage => (JsonNode)new JsonObject
        {
            ["model_name"] = usage.ModelName,
            ["invocation_count"] = usage.InvocationCount,
            ["prompt_tokens"] = usage.PromptTokens,
            ["completion_tokens"] = usage.CompletionTokens,
            ["total_tokens"] = usage.PromptTokens + usage.CompletionTokens,
            ["cached_tokens"] = 0,
        })]),
        ["per_testing_criteria_results"] = new JsonArray([.. run.PerTestingCriteriaResults.Select(result => (JsonNode)new JsonObject
        {
            ["testing_criteria"] = result.TestingCriteria,
            ["passed"] = result.Passed,
            ["failed"] = result.Failed,
        })]),
    };

    public static JsonObject OutputItem(OutputItem item) => new()
    {
        ["object"] = "eval.run.output_item",
        ["id"] = item.Id,
        ["run_id"] = item.RunId,
        ["eval_id"] = item.EvalId,
        ["created_at"] = item.CreatedAt,
        ["status"] = item.Status,
        ["datasource_item_id"] = item.DatasourceItemId,
        ["datasource_item"] = JsonNode.Parse(item.DatasourceItemJson),
        ["results"] = JsonNode.Parse(item.ResultsJson),
        ["sample"] = JsonNode.Parse(item.SampleJson),
    };

    /// <summary>Our addition: base versus tuned, with the promotion verdict.</summary>
    public static JsonObject Comparison(RunComparison comparison, string gatewayBaseUrl) => new()
    {
        ["object"] = "eval.run.comparison",
        ["eval_id"] = comparison.EvalId,
        ["baseline"] = Run(comparison.Baseline, gatewayBaseUrl),
        ["candidate"] = Run(comparison.Candidate, gatewayBaseUrl),
        ["items_compared"] = comparison.ItemsCompared,
        ["baseline_pass_rate"] = comparison.BaselinePassRate,
        ["candidate_pass_rate"] = comparison.CandidatePassRate,
        ["improved"] = comparison.Improved,
        ["regressed"] = comparison.Regressed,
        ["min_improvement"] = comparison.MinImprovement,
        ["promote"] = comparison.Promote,
        ["per_testing_criteria"] = new JsonArray([.. comparison.Criteria.Select(criterion => (JsonNode)new JsonObject
        {
            ["testing_criteria"] = criterion.TestingCriteria,
            ["baseline_pass_rate"] = criterion.BaselinePassRate,
            ["candidate_pass_rate"] = criterion.CandidatePassRate,
            ["baseline_mean_score"] = criterion.BaselineMeanScore,
            ["candidate_mean_score"] = criterion.CandidateMeanScore,
        })]),
    };
}
