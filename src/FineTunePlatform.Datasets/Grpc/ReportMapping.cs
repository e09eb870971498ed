using FineTunePlatform.Contracts.Datasets;
using FineTunePlatform.Datasets.Validation;

namespace FineTunePlatform.Datasets.Grpc;

internal static class ReportMapping
{
    /// <summary>`model` (optional) keeps only the fit of the preset at its root (ft:local-nano:... is local-nano's).</summary>
    public static ValidationReport ToContract(Files.DatasetFile file, DatasetReport report, string? model = null)
    {
        var contract = new ValidationReport
        {
            FileId = file.Id,
            Status = file.Status,
            Format = report.Format ?? "",
            ExampleCount = report.ExampleCount,
            Statistics = new TokenStatistics
            {
                MessagesPerExample = ToContract(report.MessagesPerExample),
                TotalTokensPerExample = ToContract(report.TotalTokensPerExample),
                AssistantTokensPerExample = ToContract(report.AssistantTokensPerExample),
                ExamplesMissingSystem = report.ExamplesMissingSystem,
                ExamplesMissingUser = report.ExamplesMissingUser,
                ExamplesOverTokenLimit = report.ExamplesOverTokenLimit,
                TotalTokens = report.TotalTokens,
            },
            BillableTokensPerEpoch = report.BillableTokensPerEpoch,
            RecommendedEpochs = report.RecommendedEpochs,
            EstimatedBillableTokens = report.EstimatedBillableTokens,
        };
        var root = model is null ? null : ValidationOptions.BaseModelOf(model);
        contract.ModelFits.AddRange((report.ModelFits ?? []).Where(fit => root is null || fit.Model == root).Select(fit =>
        {
            var contractFit = new ModelFit
            {
                Model = fit.Model,
                Tokenizer = fit.Tokenizer,
                ContextTokens = fit.ContextTokens,
                ExamplesTruncated = fit.ExamplesTruncated,
                ExamplesWithoutLearnedTokens = fit.ExamplesWithoutLearnedTokens,
                TokensPerEpoch = fit.TokensPerEpoch,
                Message = fit.Message,
            };
            contractFit.LinesWithoutLearnedTokens.AddRange(fit.LinesWithoutLearnedTokens);
            return contractFit;
        }));
        contract.ErrorCounts.AddRange(report.ErrorCounts.OrderBy(pair => pair.Key, StringComparer.Ordinal)
            .Select(pair => new ErrorCount { Category = pair.Key, Count = pair.Value }));
        contract.Errors.AddRange(report.Errors.Select(error => new ValidationError
        {
            Category = error.Category,
            Line = error.Line,
            Path = error.Path,
            Message = error.Message,
        }));
        return contract;
    }

    private static Distribution ToContract(DistributionSummary summary) => new()
    {
        Min = summary.Min,
        Max = summary.Max,
        Mean = summary.Mean,
        Median = summary.Median,
        P5 = summary.P5,
        P95 = summary.P95,
    };
}
