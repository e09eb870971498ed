using System.CommandLine;
using System.Net.Http.Headers;
using System.Text.Json;
using FineTunePlatform.Cli.Output;
using FineTunePlatform.Datasets.Validation;

namespace FineTunePlatform.Cli.Commands;

/// <summary>
/// `ftune files upload|report|list|check`: training and eval files, why a file was refused (line by line), and the
/// same check offline before uploading.
/// </summary>
public static class FileCommands
{
    public static Command Create(ConnectionOptions connection, CommandOutput output)
    {
        var path = new Argument<FileInfo>("path") { Description = "A JSONL file: chat examples, DPO preferences, or eval items ({\"item\": {...}} per line)." };
        var purpose = new Option<string>("--purpose") { Description = "fine-tune (default) or evals.", DefaultValueFactory = _ => "fine-tune" };
        purpose.AcceptOnlyFromAmong("fine-tune", "evals");
        var upload = new Command("upload", "Upload a file (streamed, with a progress bar on a terminal) and show its validation: id, status, and every error with its line.") { path, purpose };
        upload.SetAction(async (parse, cancellationToken) =>
        {
            var file = Existing(parse.GetValue(path)!);
            var platform = connection.Open(parse);
            // Plain HTTP, not the SDK: the file streams from disk as the request is sent, so that the bar shows what
            // has really gone, and the platform's file object is printed as it came (--json).
            var progress = output.Terminal.ErrorIsTerminal ? new ProgressBar(output.Error, file.Name, file.Length) : null;
            var content = new StreamContent(new ProgressFileStream(file, progress), 1 << 16);
            content.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
            using var form = new MultipartFormDataContent { { new StringContent(parse.GetValue(purpose)!), "purpose" }, { content, "file", file.Name } };
            var uploaded = await platform.SendAsync(new HttpRequestMessage(HttpMethod.Post, "files") { Content = form }, cancellationToken);
            progress?.Complete();
            await output.ShowAsync(parse, uploaded, text => text.WriteLineAsync(
                $"{Table.Text(uploaded, "id")}  {Table.Text(uploaded, "filename")}  {Table.Text(uploaded, "bytes")} bytes  {Table.Text(uploaded, "status")}"));
            if (parse.GetValue(purpose) != "fine-tune")
            {
                return 0;
            }

            var report = await ReportAsync(platform, Table.Text(uploaded, "id"), cancellationToken);
            await output.ShowAsync(parse, report, text => WriteReportAsync(text, report));
            return Table.Text(report, "status") == "processed" ? 0 : 1;
        });

        var fileId = new Argument<string>("file-id");
        var report = new Command("report", "Show a fine-tuning file's validation report: format, examples, token statistics, how it fits each model, errors.") { fileId };
        report.SetAction(async (parse, cancellationToken) =>
        {
            var found = await ReportAsync(connection.Open(parse), parse.GetValue(fileId)!, cancellationToken);
            await output.ShowAsync(parse, found, text => WriteReportAsync(text, found));
            return 0;
        });

        var list = new Command("list", "List the project's files.");
        list.SetAction(async (parse, cancellationToken) =>
        {
            // Plain HTTP, not the SDK: its FilePurpose and FileStatus print as enum names (FineTune, Processed).
            var page = await connection.Open(parse).GetAsync("files", cancellationToken);
            await output.ShowTableAsync(parse, page, ["ID", "PURPOSE", "STATUS", "BYTES", "CREATED", "FILENAME"],
                file => [Table.Text(file, "id"), Table.Text(file, "purpose"), Table.Text(file, "status"), Table.Text(file, "bytes"), Table.Time(file, "created_at"), Table.Text(file, "filename")]);
            return 0;
        });

        var checkedPath = new Argument<FileInfo>("path") { Description = "A JSONL fine-tuning file: chat examples or DPO preferences." };
        var model = new Option<string?>("--model") { Description = "The base model to tune: its token limit per example, and only its fit (default: every built-in model's)." };
        var check = new Command("check", "Check a fine-tuning file offline, as the platform checks an upload: every error with its line, tokens and epochs, how it fits each model. Exit 0 only for a usable file.")
        {
            checkedPath, model,
        };
        check.SetAction(async (parse, cancellationToken) =>
        {
            var file = Existing(parse.GetValue(checkedPath)!);
            var baseModel = parse.GetValue(model);
            DatasetReport checkedReport;
            await using (var stream = new FileStream(file.FullName, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, useAsync: true))
            {
                checkedReport = await new DatasetValidator(new ValidationOptions(), baseModel, TokenCounter.Shared).ValidateAsync(stream, cancellationToken);
            }

            var found = OfflineReport(checkedReport, baseModel);
            await output.ShowAsync(parse, found, text => WriteReportAsync(text, found));
            return checkedReport.IsValid ? 0 : 1;
        });

        return new Command("files", "Upload, check and inspect files.") { upload, report, list, check };
    }

    private static FileInfo Existing(FileInfo file) => file.Exists ? file : throw new CliException($"no such file: {file.FullName}", 2);

    private static Task<JsonElement> ReportAsync(PlatformConnection platform, string fileId, CancellationToken cancellationToken) =>
        platform.GetAsync($"files/{Uri.EscapeDataString(fileId)}/report", cancellationToken);

    private static readonly JsonSerializerOptions SnakeCase = new() { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };

    /// <summary>
    /// A report checked here in the shape GET /v1/files/{id}/report serves (no file id: nothing was uploaded), so
    /// that one printer and one script read both; `model`, like the endpoint's `?model=`, keeps only its base's fit.
    /// </summary>
    public static JsonElement OfflineReport(DatasetReport report, string? model)
    {
        var root = model is null ? null : ValidationOptions.BaseModelOf(model);
        return JsonSerializer.SerializeToElement(new
        {
            @object = "file.report",
            file_id = (string?)null,
            status = report.IsValid ? "processed" : "error",
            format = report.Format,
            example_count = report.ExampleCount,
            error_counts = report.ErrorCounts.OrderBy(pair => pair.Key, StringComparer.Ordinal).ToDictionary(),
            errors = report.Errors.Select(error => new { category = error.Category, line = error.Line, path = error.Path, message = error.Message }),
            statistics = new
            {
                messages_per_example = report.MessagesPerExample,
                total_tokens_per_example = report.TotalTokensPerExample,
                assistant_tokens_per_example = report.AssistantTokensPerExample,
                examples_missing_system = report.ExamplesMissingSystem,
                examples_missing_user = report.ExamplesMissingUser,
                examples_over_token_limit = report.ExamplesOverTokenLimit,
                total_tokens = report.TotalTokens,
            },
            billable_tokens_per_epoch = report.BillableTokensPerEpoch,
            recommended_epochs = report.RecommendedEpochs,
            estimated_billable_tokens = report.EstimatedBillableTokens,
            model_fits = (report.ModelFits ?? []).Where(fit => root is null || fit.Model == root).Select(fit => new
            {
                model = fit.Model,
                tokenizer = fit.Tokenizer,
                context_tokens = fit.ContextTokens,
                examples_truncated = fit.ExamplesTruncated,
                examples_without_learned_tokens = fit.ExamplesWithoutLearnedTokens,
                lines_without_learned_tokens = fit.LinesWithoutLearnedTokens,
                tokens_per_epoch = fit.TokensPerEpoch,
                message = fit.Message.Length == 0 ? null : fit.Message,
            }),
        }, SnakeCase);
    }

    private static async Task WriteReportAsync(TextWriter output, JsonElement report)
    {
        var format = report.TryGetProperty("format", out var value) && value.ValueKind == JsonValueKind.String ? value.GetString() : "unknown";
        await output.WriteLineAsync($"{report.GetProperty("status").GetString()}: {report.GetProperty("example_count").GetInt64()} {format} examples, "
            + $"{report.GetProperty("billable_tokens_per_epoch").GetInt64()} billable tokens per epoch, {report.GetProperty("recommended_epochs").GetInt32()} epochs recommended");
        IEnumerable<JsonElement> fits = report.TryGetProperty("model_fits", out var listed) && listed.ValueKind == JsonValueKind.Array ? listed.EnumerateArray() : [];
        foreach (var fit in fits)
        {
            // Truncation is never silent: each model's context, what an epoch costs on it, and what does not fit.
            var message = Table.Text(fit, "message") is var text && text != "-" ? $"; {text}" : "";
            await output.WriteLineAsync($"  {Table.Text(fit, "model")}: {Table.Text(fit, "tokens_per_epoch")} tokens per epoch in its {Table.Text(fit, "context_tokens")}-token context{message}");
        }

        foreach (var error in report.GetProperty("errors").EnumerateArray())
        {
            // Line 0 is the report's way of saying "the file as a whole" (too few examples, nothing to learn): no
            // line to point at, and "$" is no field either.
            var line = error.TryGetProperty("line", out var number) && number.ValueKind == JsonValueKind.Number ? number.GetInt64() : 0;
            var jsonPath = error.TryGetProperty("path", out var at) && at.ValueKind == JsonValueKind.String && at.GetString() is { Length: > 0 } p && p != "$" ? $" {p}" : "";
            var where = line > 0 ? $"line {line}{jsonPath}" : "file";
            await output.WriteLineAsync($"  {where}: {error.GetProperty("message").GetString()} [{error.GetProperty("category").GetString()}]");
        }
    }
}
