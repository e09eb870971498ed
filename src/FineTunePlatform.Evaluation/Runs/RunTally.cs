using System.Text.Json.Nodes;
using FineTunePlatform.Evaluation.Graders;

namespace FineTunePlatform.Evaluation.Runs;

/// <summary>A run's result counts and per-criterion passes, kept as items are graded (and rebuilt on resume).</summary>
public sealed class RunTally(IReadOnlyList<Grader> graders)
{
    private readonly Lock _lock = new();
    private readonly Dictionary<string, (int Passed, int Failed)> _criteria = graders.ToDictionary(grader => grader.Name, _ => (0, 0));
    private int _total;
    private int _errored;
    private int _failed;
    private int _passed;

    public void Add(string status, JsonArray results)
    {
        lock (_lock)
        {
            _total++;
            switch (status)
            {
                case OutputItemStatus.Pass: _passed++; break;
                case OutputItemStatus.Fail: _failed++; break;
                default: _errored++; break;
            }

            foreach (var result in results)
            {
                var name = result?["name"]?.GetValue<string>();
                if (name is not null && _criteria.TryGetValue(name, out var counts))
                {
                    _criteria[name] = result!["passed"]?.GetValue<bool>() == true ? (counts.Passed + 1, counts.Failed) : (counts.Passed, counts.Failed + 1);
                }
            }
        }
    }

    public void WriteTo(EvalRun run)
    {
        lock (_lock)
        {
            (run.Total, run.Errored, run.Failed, run.Passed) = (_total, _errored, _failed, _passed);
            run.PerCriterion = new JsonArray([.. graders.Select(grader => (JsonNode)new JsonObject
            {
                ["testing_criteria"] = grader.Name,
                ["passed"] = _criteria[grader.Name].Passed,
                ["failed"] = _criteria[grader.Name].Failed,
            })]).ToJsonString();
        }
    }
}
