using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using FineTunePlatform.Contracts.Evaluation;
using FineTunePlatform.Contracts.Inference;
using FineTunePlatform.Evaluation.Evals;
using FineTunePlatform.Evaluation.Runs;
using Grpc.Core;

namespace FineTunePlatform.Evaluation.Graders;

/// <summary>
/// OpenAI's graders API (/v1/fine_tuning/alpha/graders/run and /validate) over the graders evals use: a grader is
/// read exactly as an eval's testing criterion is (the same refusals, naming grader.&lt;field&gt;), and graded on one
/// model sample and item the way a run grades an output item, so what a user tries here is what their eval does.
/// </summary>
public sealed class GraderRunner(InferenceService.InferenceServiceClient inference)
{
    public static ValidateGraderResponse Validate(ValidateGraderRequest request)
    {
        var (_, canonical) = Read(request.GraderJson);
        return new ValidateGraderResponse { GraderJson = canonical.ToJsonString() };
    }

    public async Task<RunGraderResponse> RunAsync(RunGraderRequest request, Metadata caller, CancellationToken cancellationToken)
    {
        var (grader, _) = Read(request.GraderJson);
        var item = string.IsNullOrEmpty(request.ItemJson) ? null : Parse(request.ItemJson, "item");
        if (item is not null and not JsonObject)
        {
            throw new InvalidEvalException("'item' must be an object.", "item");
        }

        var sample = RunProcessor.WithOutputText(new JsonObject { ["output_text"] = request.ModelSample });
        var judge = new GatewayChatModel(inference, caller);
        var response = new RunGraderResponse { Name = grader.Name, Type = grader.Type };
        var clock = Stopwatch.StartNew();
        try
        {
            var result = await grader.GradeAsync(new GradingInput(item, sample), judge, cancellationToken);
            response.Reward = result.Score;
            if (grader is ModelGrader && result.Sample?["verdict"] is null)
            {
                response.Error = "model_grader_parse_error";
                response.ErrorDetails = $"The model's answer could not be read as the grader asks: {result.Sample?["output"]}";
            }
        }
        catch (RpcException ex) when (ex.StatusCode is not StatusCode.Cancelled)
        {
            response.Error = "model_grader_server_error";
            response.ErrorDetails = ex.Status.Detail;
        }

        response.ExecutionTime = clock.Elapsed.TotalSeconds;
        if (grader is ModelGrader model)
        {
            response.SampledModelName = model.Model;
            var usage = new JsonObject();
            foreach (var (name, counter) in judge.Usage)
            {
                usage[name] = RunProcessor.Usage(counter.PromptTokens, counter.CompletionTokens);
            }

            response.TokenUsage = judge.Usage.Sum(pair => pair.Usage.PromptTokens + pair.Usage.CompletionTokens);
            response.TokenUsagePerModelJson = usage.ToJsonString();
        }

        return response;
    }

    private static (Grader Grader, JsonObject Canonical) Read(string graderJson)
    {
        if (Parse(graderJson, "grader") is not JsonObject criterion)
        {
            throw new InvalidEvalException("'grader' must be an object.", "grader");
        }

        return (EvalDefinition.ReadGrader(criterion, "grader", passThresholdRequired: false), criterion);
    }

    private static JsonNode? Parse(string json, string param)
    {
        try
        {
            return JsonNode.Parse(json);
        }
        catch (JsonException)
        {
            throw new InvalidEvalException($"'{param}' is not valid JSON.", param);
        }
    }
}
