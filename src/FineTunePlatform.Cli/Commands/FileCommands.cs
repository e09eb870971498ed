using System.CommandLine;
using System.Text.Json;
using OpenAI.Files;

namespace FineTunePlatform.Cli.Commands;

/// <summary>`ftune files upload|report|list`: training and eval files, and why a file was refused (line by line).</summary>
public static class FileCommands
{
    public static Command Create(ConnectionOptions connection, TextWriter output)
    {
        var path = new Argument<FileInfo>("path") { Description = "A JSONL file: chat examples, DPO preferences, or eval items ({\"item\": {...}} per line)." };
        var purpose = new Option<string>("--purpose") { Description = "fine-tune (default) or evals.", DefaultValueFactory = _ => "fine-tune" };
        purpose.AcceptOnlyFromAmong("fine-tune", "evals");
        var upload = new Command("upload", "Upload a file (streamed) and show its validation: id, status, and every error with its line.") { path, purpose };
        upload.SetAction(async (parse, cancellationToken) =>
        {
            var file = parse.GetValue(path)!;
            if (!file.Exists)
            {
                throw new CliException($"no such file: {file.FullName}", 2);
            }

            var platform = connection.Open(parse);
            var uploaded = (await platform.OpenAI.GetOpenAIFileClient().UploadFileAsync(file.FullName, new FileUploadPurpose(parse.GetValue(purpose)!))).Value;
#pragma warning disable CS0618 // Status is marked obsolete in the SDK but is what OpenAI (and the platform) return.
            var status = uploaded.Status;
#pragma warning restore CS0618
            await output.WriteLineAsync($"{uploaded.Id}  {uploaded.Filename}  {uploaded.SizeInBytes} bytes  {status.ToString().ToLowerInvariant()}");
            if (parse.GetValue(purpose) != "fine-tune")
            {
                return 0;
            }

            var report = await ReportAsync(platform, uploaded.Id, cancellationToken);
            await WriteReportAsync(output, report);
            return report.GetProperty("status").GetString() == "processed" ? 0 : 1;
        });

        var fileId = new Argument<string>("file-id");
        var report = new Command("report", "Show a fine-tuning file's validation report: format, examples, token statistics, errors.") { fileId };
        report.SetAction(async (parse, cancellationToken) =>
        {
            var found = await ReportAsync(connection.Open(parse), parse.GetValue(fileId)!, cancellationToken);
            await WriteReportAsync(output, found);
            return 0;
        });

        var list = new Command("list", "List the project's files.");
        list.SetAction(async (parse, cancellationToken) =>
        {
            // Plain HTTP, not the SDK: its FilePurpose and FileStatus print as enum names (FineTune, Processed).
            var page = await connection.Open(parse).GetAsync("files", cancellationToken);
            var rows = page.GetProperty("data").EnumerateArray()
                .Select(file => new[] { Table.Text(file, "id"), Table.Text(file, "purpose"), Table.Text(file, "status"), Table.Text(file, "bytes"), Table.Time(file, "created_at"), Table.Text(file, "filename") })
                .ToList();
            await Table.WriteAsync(output, ["ID", "PURPOSE", "STATUS", "BYTES", "CREATED", "FILENAME"], rows);
            return 0;
        });

        return new Command("files", "Upload and inspect files.") { upload, report, list };
    }

    private static Task<JsonElement> ReportAsync(PlatformConnection platform, string fileId, CancellationToken cancellationToken) =>
        platform.GetAsync($"files/{Uri.EscapeDataString(fileId)}/report", cancellationToken);

    private static async Task WriteReportAsync(TextWriter output, JsonElement report)
    {
        var format = report.TryGetProperty("format", out var value) && value.ValueKind == JsonValueKind.String ? value.GetString() : "unknown";
        await output.WriteLineAsync($"{report.GetProperty("status").GetString()}: {report.GetProperty("example_count").GetInt64()} {format} examples, "
            + $"{report.GetProperty("billable_tokens_per_epoch").GetInt64()} billable tokens per epoch, {report.GetProperty("recommended_epochs").GetInt32()} epochs recommended");
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
