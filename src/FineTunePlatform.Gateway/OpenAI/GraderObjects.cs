using System.Text.Json.Nodes;
using FineTunePlatform.Contracts.Evaluation;

namespace FineTunePlatform.Gateway.OpenAI;

/// <summary>OpenAI's answer to running a grader, field for field: the reward and metadata (errors named as OpenAI names them).</summary>
public static class GraderObjects
{
    private static readonly string[] ErrorFlags =
    [
        "formula_parse_error", "sample_parse_error", "truncated_observation_error", "unresponsive_reward_error", "invalid_variable_error", "other_error",
        "python_grader_server_error", "python_grader_runtime_error", "model_grader_server_error", "model_grader_refusal_error", "model_grader_parse_error",
    ];

    public static JsonObject RunResult(RunGraderResponse result)
    {
        var errors = new JsonObject();
        foreach (var flag in ErrorFlags)
        {
            errors[flag] = result.Error == flag;
        }

        errors["python_grader_server_error_type"] = null;
        errors["python_grader_runtime_error_details"] = null;
        errors["model_grader_server_error_details"] = result.Error == "model_grader_server_error" ? result.ErrorDetails : null;
        return new JsonObject
        {
            ["reward"] = result.Reward,
            ["metadata"] = new JsonObject
            {
                ["name"] = result.Name,
                ["type"] = result.Type,
                ["errors"] = errors,
                ["execution_time"] = result.ExecutionTime,
                ["scores"] = new JsonObject(),
                ["token_usage"] = result.HasTokenUsage ? result.TokenUsage : null,
                ["sampled_model_name"] = result.SampledModelName.Length == 0 ? null : result.SampledModelName,
            },
            ["sub_rewards"] = new JsonObject(),
            ["model_grader_token_usage_per_model"] = string.IsNullOrEmpty(result.TokenUsagePerModelJson) ? new JsonObject() : JsonNode.Parse(result.TokenUsagePerModelJson),
        };
    }
}
