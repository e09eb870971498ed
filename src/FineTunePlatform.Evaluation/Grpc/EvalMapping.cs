using System.Text.Json;
using System.Text.Json.Nodes;
using FineTunePlatform.Evaluation.Runs;
using ProtoEval = FineTunePlatform.Contracts.Evaluation.Eval;
using ProtoOutputItem = FineTunePlatform.Contracts.Evaluation.OutputItem;
using ProtoRun = FineTunePlatform.Contracts.Evaluation.EvalRun;

namespace FineTunePlatform.Evaluation.Grpc;

/// <summary>Domain rows to their wire messages.</summary>
internal static class EvalMapping
{
    public static ProtoEval ToContract(this Evals.Eval eval)
    {
        var contract = new ProtoEval
        {
            Id = eval.Id,
            Name = eval.Name,
            DataSourceConfigJson = eval.DataSourceConfig,
            TestingCriteriaJson = eval.TestingCriteria,
            CreatedAt = eval.CreatedAt.ToUnixTimeSeconds(),
        };
        contract.Metadata.Add(ReadMetadata(eval.Metadata));
        return contract;
    }

    public static ProtoRun ToContract(this EvalRun run)
    {
        var contract = new ProtoRun
        {
            Id = run.Id,
            EvalId = run.EvalId,
            Name = run.Name,
            Status = run.Status,
            Model = run.Model ?? "",
            DataSourceJson = run.DataSource,
            CreatedAt = run.CreatedAt.ToUnixTimeSeconds(),
            ResultCounts = new Contracts.Evaluation.ResultCounts { Total = run.Total, Errored = run.Errored, Failed = run.Failed, Passed = run.Passed },
            Error = run.ErrorCode is null ? null : new Contracts.Evaluation.RunError { Code = run.ErrorCode, Message = run.ErrorMessage ?? "" },
        };
        contract.Metadata.Add(ReadMetadata(run.Metadata));
        foreach (var usage in JsonNode.Parse(run.PerModelUsage)!.AsArray())
        {
            contract.PerModelUsage.Add(new Contracts.Evaluation.ModelUsage
            {
                ModelName = usage!["model_name"]!.GetValue<string>(),
                InvocationCount = usage["invocation_count"]!.GetValue<int>(),
                PromptTokens = usage["prompt_tokens"]!.GetValue<long>(),
                CompletionTokens = usage["completion_tokens"]!.GetValue<long>(),
            });
        }

        foreach (var criterion in JsonNode.Parse(run.PerCriterion)!.AsArray())
        {
            contract.PerTestingCriteriaResults.Add(new Contracts.Evaluation.CriterionResult
            {
                TestingCriteria = criterion!["testing_criteria"]!.GetValue<string>(),
                Passed = criterion["passed"]!.GetValue<int>(),
                Failed = criterion["failed"]!.GetValue<int>(),
            });
        }

        return contract;
    }

    public static ProtoOutputItem ToContract(this EvalOutputItem item) => new()
    {
        Id = item.Id,
        RunId = item.RunId,
        EvalId = item.EvalId,
        CreatedAt = item.CreatedAt.ToUnixTimeSeconds(),
        Status = item.Status,
        DatasourceItemId = item.DatasourceItemId,
        DatasourceItemJson = item.Item,
        ResultsJson = item.Results,
        SampleJson = item.Sample ?? "null",
    };

    public static string WriteMetadata(IDictionary<string, string> metadata) => JsonSerializer.Serialize(metadata);

    private static Dictionary<string, string> ReadMetadata(string json) => JsonSerializer.Deserialize<Dictionary<string, string>>(json) ?? [];
}
