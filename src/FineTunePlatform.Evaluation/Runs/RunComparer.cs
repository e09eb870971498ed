using System.Text.Json.Nodes;
using FineTunePlatform.Contracts.Evaluation;
using FineTunePlatform.Evaluation.Infrastructure;
using Microsoft.EntityFrameworkCore;

namespace FineTunePlatform.Evaluation.Runs;

/// <summary>How one item fared in a run: passed overall, and each criterion's result.</summary>
public sealed record ItemOutcome(bool Passed, JsonArray Results);

/// <summary>
/// Base versus tuned: two runs of one eval compared on the items they share (by position in the data source), per
/// criterion and overall. The candidate is promoted when its pass rate is at least the baseline's plus
/// `minImprovement`; an errored item counts as not passed.
/// </summary>
public static class RunComparer
{
    /// <summary>Each graded item of a run by its position in the data source.</summary>
    public static async Task<Dictionary<int, ItemOutcome>> OutcomesAsync(EvaluationDbContext db, string runId, CancellationToken cancellationToken) =>
        (await db.OutputItems.AsNoTracking().Where(item => item.RunId == runId)
            .Select(item => new { item.DatasourceItemId, item.Status, item.Results }).ToListAsync(cancellationToken))
        .ToDictionary(item => item.DatasourceItemId, item => new ItemOutcome(item.Status == OutputItemStatus.Pass, JsonNode.Parse(item.Results)!.AsArray()));

    public static RunComparison Compare(IReadOnlyDictionary<int, ItemOutcome> baseline, IReadOnlyDictionary<int, ItemOutcome> candidate, double minImprovement)
    {
        var shared = baseline.Keys.Where(candidate.ContainsKey).ToList();
        var comparison = new RunComparison { ItemsCompared = shared.Count, MinImprovement = minImprovement };
        if (shared.Count == 0)
        {
            return comparison;
        }

        comparison.BaselinePassRate = shared.Count(id => baseline[id].Passed) / (double)shared.Count;
        comparison.CandidatePassRate = shared.Count(id => candidate[id].Passed) / (double)shared.Count;
        comparison.Improved = shared.Count(id => !baseline[id].Passed && candidate[id].Passed);
        comparison.Regressed = shared.Count(id => baseline[id].Passed && !candidate[id].Passed);
        comparison.Promote = comparison.CandidatePassRate >= comparison.BaselinePassRate + minImprovement - 1e-12;

        var names = shared.SelectMany(id => baseline[id].Results.Select(result => result?["name"]?.GetValue<string>())).OfType<string>().Distinct();
        foreach (var name in names)
        {
            var (baselinePassRate, baselineScore) = Criterion(shared.Select(id => baseline[id]), name);
            var (candidatePassRate, candidateScore) = Criterion(shared.Select(id => candidate[id]), name);
            comparison.Criteria.Add(new CriterionComparison
            {
                TestingCriteria = name,
                BaselinePassRate = baselinePassRate,
                CandidatePassRate = candidatePassRate,
                BaselineMeanScore = baselineScore,
                CandidateMeanScore = candidateScore,
            });
        }

        return comparison;
    }

    /// <summary>Pass rate and mean score of one criterion over items; an item without that result (errored) counts as 0.</summary>
    private static (double PassRate, double MeanScore) Criterion(IEnumerable<ItemOutcome> items, string name)
    {
        int count = 0, passed = 0;
        double score = 0;
        foreach (var item in items)
        {
            count++;
            var result = item.Results.FirstOrDefault(result => result?["name"]?.GetValue<string>() == name);
            if (result is not null)
            {
                passed += result["passed"]?.GetValue<bool>() == true ? 1 : 0;
                score += result["score"]?.GetValue<double>() ?? 0;
            }
        }

        return (passed / (double)count, score / count);
    }
}
