using System.Globalization;
using System.Text;
using System.Text.Json;
using FineTunePlatform.Contracts.Datasets;
using FineTunePlatform.Training.Infrastructure;
using Google.Protobuf;
using Microsoft.EntityFrameworkCore;

namespace FineTunePlatform.Training.Jobs;

/// <summary>
/// Writes a finished job's `fine-tune-results` file (OpenAI's CSV: step, train_loss, train_accuracy, valid_loss,
/// valid_mean_token_accuracy) to the dataset service, built from the job's metrics events. A step trained twice
/// (an attempt resumed from a checkpoint) keeps its last report.
/// </summary>
public sealed class ResultsFile(TrainingDbContext db, DatasetService.DatasetServiceClient datasets)
{

    public async Task<string> WriteAsync(TrainingJob job, CancellationToken cancellationToken)
    {
        var metrics = await db.Events.AsNoTracking()
            .Where(jobEvent => jobEvent.JobId == job.Id && jobEvent.Type == JobEventLog.MetricsType)
            .OrderBy(jobEvent => jobEvent.Sequence)
            .Select(jobEvent => jobEvent.Data)
            .ToListAsync(cancellationToken);
        var rows = new SortedDictionary<int, JsonElement>();
        foreach (var data in metrics)
        {
            var element = JsonDocument.Parse(data).RootElement;
            rows[element.GetProperty("step").GetInt32()] = element;
        }

        var csv = new StringBuilder("step,train_loss,train_accuracy,valid_loss,valid_mean_token_accuracy\n");
        foreach (var (step, row) in rows)
        {
            csv.Append(CultureInfo.InvariantCulture, $"{step},{Value(row, "train_loss")},{Value(row, "train_mean_token_accuracy")},{Value(row, "valid_loss")},{Value(row, "valid_mean_token_accuracy")}\n");
        }

        var headers = new InternalCaller(job.ProjectId, Roles.Owner, null).ToMetadata();
        using var upload = datasets.Upload(headers, cancellationToken: cancellationToken);
        await upload.RequestStream.WriteAsync(new UploadRequest { Metadata = new UploadMetadata { Filename = "step_metrics.csv", Purpose = "fine-tune-results" } }, cancellationToken);
        await upload.RequestStream.WriteAsync(new UploadRequest { Chunk = ByteString.CopyFromUtf8(csv.ToString()) }, cancellationToken);
        await upload.RequestStream.CompleteAsync();
        var file = await upload;
        return file.Id;
    }

    private static string Value(JsonElement row, string name) =>
        row.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.Number
            ? value.GetDouble().ToString("0.#####", CultureInfo.InvariantCulture)
            : "";
}
