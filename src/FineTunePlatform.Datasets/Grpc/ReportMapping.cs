using FineTunePlatform.Contracts.Datasets;
using FineTunePlatform.Datasets.Validation;

namespace FineTunePlatform.Datasets.Grpc;

internal static class ReportMapping
{
    public static ValidationReport ToContract(Files.DatasetFile file, DatasetReport report)
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
