using System.Text.Json.Serialization;
using FineTunePlatform.Contracts.Datasets;

namespace FineTunePlatform.Gateway.OpenAI;

/// <summary>
/// OpenAI's File object, field for field (the .NET SDK reads status and purpose strictly). `expires_at` and
/// `status_details` are optional and not nullable in OpenAI's OpenAPI document: left out when there is none.
/// </summary>
public sealed record FileObject(
    [property: JsonPropertyName("id")] string Id,
    [property: JsonPropertyName("object")] string Object,
    [property: JsonPropertyName("bytes")] long Bytes,
    [property: JsonPropertyName("created_at")] long CreatedAt,
    [property: JsonPropertyName("expires_at"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] long? ExpiresAt,
    [property: JsonPropertyName("filename")] string Filename,
    [property: JsonPropertyName("purpose")] string Purpose,
    [property: JsonPropertyName("status")] string Status,
    [property: JsonPropertyName("status_details"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? StatusDetails)
{
    public static FileObject From(DatasetFile file) => new(
        file.Id, "file", file.Bytes, file.CreatedAt, file.ExpiresAt == 0 ? null : file.ExpiresAt, file.Filename, file.Purpose, file.Status,
        string.IsNullOrEmpty(file.StatusDetails) ? null : file.StatusDetails);
}

public sealed record FileListObject(
    [property: JsonPropertyName("object")] string Object,
    [property: JsonPropertyName("data")] IReadOnlyList<FileObject> Data,
    [property: JsonPropertyName("first_id")] string? FirstId,
    [property: JsonPropertyName("last_id")] string? LastId,
    [property: JsonPropertyName("has_more")] bool HasMore);

public sealed record DeletedObject(
    [property: JsonPropertyName("id")] string Id,
    [property: JsonPropertyName("object")] string Object,
    [property: JsonPropertyName("deleted")] bool Deleted);

/// <summary>OpenAI's Upload object (the Uploads API for files up to 8 GB).</summary>
public sealed record UploadObject(
    [property: JsonPropertyName("id")] string Id,
    [property: JsonPropertyName("object")] string Object,
    [property: JsonPropertyName("bytes")] long Bytes,
    [property: JsonPropertyName("created_at")] long CreatedAt,
    [property: JsonPropertyName("filename")] string Filename,
    [property: JsonPropertyName("purpose")] string Purpose,
    [property: JsonPropertyName("status")] string Status,
    [property: JsonPropertyName("expires_at")] long ExpiresAt,
    [property: JsonPropertyName("file")] FileObject? File)
{
    public static UploadObject From(UploadSession upload) => new(
        upload.Id, "upload", upload.Bytes, upload.CreatedAt, upload.Filename, upload.Purpose, upload.Status, upload.ExpiresAt,
        upload.File is null ? null : FileObject.From(upload.File));
}

public sealed record UploadPartObject(
    [property: JsonPropertyName("id")] string Id,
    [property: JsonPropertyName("object")] string Object,
    [property: JsonPropertyName("created_at")] long CreatedAt,
    [property: JsonPropertyName("upload_id")] string UploadId);

public sealed record CreateUploadRequest(
    [property: JsonPropertyName("filename")] string? Filename,
    [property: JsonPropertyName("purpose")] string? Purpose,
    [property: JsonPropertyName("bytes")] long? Bytes,
    [property: JsonPropertyName("mime_type")] string? MimeType);

public sealed record CompleteUploadRequest(
    [property: JsonPropertyName("part_ids")] IReadOnlyList<string>? PartIds,
    [property: JsonPropertyName("md5")] string? Md5);

/// <summary>Our addition: the validation report of a fine-tuning file.</summary>
public sealed record FileReportObject(
    [property: JsonPropertyName("object")] string Object,
    [property: JsonPropertyName("file_id")] string FileId,
    [property: JsonPropertyName("status")] string Status,
    [property: JsonPropertyName("format")] string? Format,
    [property: JsonPropertyName("example_count")] long ExampleCount,
    [property: JsonPropertyName("error_counts")] IReadOnlyDictionary<string, long> ErrorCounts,
    [property: JsonPropertyName("errors")] IReadOnlyList<FileReportError> Errors,
    [property: JsonPropertyName("statistics")] FileReportStatistics Statistics,
    [property: JsonPropertyName("billable_tokens_per_epoch")] long BillableTokensPerEpoch,
    [property: JsonPropertyName("recommended_epochs")] int RecommendedEpochs,
    [property: JsonPropertyName("estimated_billable_tokens")] long EstimatedBillableTokens,
    [property: JsonPropertyName("model_fits")] IReadOnlyList<FileReportModelFit> ModelFits)
{
    public static FileReportObject From(ValidationReport report) => new(
        "file.report", report.FileId, report.Status, string.IsNullOrEmpty(report.Format) ? null : report.Format, report.ExampleCount,
        report.ErrorCounts.ToDictionary(count => count.Category, count => count.Count),
        report.Errors.Select(error => new FileReportError(error.Category, error.Line, error.Path, error.Message)).ToList(),
        new FileReportStatistics(
            report.Statistics.MessagesPerExample, report.Statistics.TotalTokensPerExample, report.Statistics.AssistantTokensPerExample,
            report.Statistics.ExamplesMissingSystem, report.Statistics.ExamplesMissingUser, report.Statistics.ExamplesOverTokenLimit, report.Statistics.TotalTokens),
        report.BillableTokensPerEpoch, report.RecommendedEpochs, report.EstimatedBillableTokens,
        report.ModelFits.Select(fit => new FileReportModelFit(fit.Model, fit.Tokenizer, fit.ContextTokens, fit.ExamplesTruncated, fit.ExamplesWithoutLearnedTokens,
            [.. fit.LinesWithoutLearnedTokens], fit.TokensPerEpoch, string.IsNullOrEmpty(fit.Message) ? null : fit.Message)).ToList());
}

/// <summary>
/// How the file fits a model's context, counted with its tokenizer (every built-in preset; `?model=` keeps one, and
/// counts an open-weight model's): truncation is never silent, and tokens_per_epoch is what a job is charged per epoch.
/// </summary>
public sealed record FileReportModelFit(
    [property: JsonPropertyName("model")] string Model,
    [property: JsonPropertyName("tokenizer")] string Tokenizer,
    [property: JsonPropertyName("context_tokens")] int ContextTokens,
    [property: JsonPropertyName("examples_truncated")] long ExamplesTruncated,
    [property: JsonPropertyName("examples_without_learned_tokens")] long ExamplesWithoutLearnedTokens,
    [property: JsonPropertyName("lines_without_learned_tokens")] IReadOnlyList<long> LinesWithoutLearnedTokens,
    [property: JsonPropertyName("tokens_per_epoch")] long TokensPerEpoch,
    [property: JsonPropertyName("message")] string? Message);

public sealed record FileReportError(
    [property: JsonPropertyName("category")] string Category,
    [property: JsonPropertyName("line")] long Line,
    [property: JsonPropertyName("path")] string Path,
    [property: JsonPropertyName("message")] string Message);

public sealed record FileReportStatistics(
    [property: JsonPropertyName("messages_per_example")] Distribution MessagesPerExample,
    [property: JsonPropertyName("total_tokens_per_example")] Distribution TotalTokensPerExample,
    [property: JsonPropertyName("assistant_tokens_per_example")] Distribution AssistantTokensPerExample,
    [property: JsonPropertyName("examples_missing_system")] long ExamplesMissingSystem,
    [property: JsonPropertyName("examples_missing_user")] long ExamplesMissingUser,
    [property: JsonPropertyName("examples_over_token_limit")] long ExamplesOverTokenLimit,
    [property: JsonPropertyName("total_tokens")] long TotalTokens);
