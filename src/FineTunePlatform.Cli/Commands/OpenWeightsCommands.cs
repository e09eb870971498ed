using System.CommandLine;
using System.Globalization;
using System.Net.Http.Headers;
using System.Text.Json;
using FineTunePlatform.Cli.Output;

namespace FineTunePlatform.Cli.Commands;

/// <summary>
/// `ftune models import|export`: an open-weight base model imported from a Hugging Face directory (an admin key:
/// POST /admin/v1/models, streamed from disk), and a model tuned from one exported as a zip (GET
/// /v1/models/{id}/weights: PEFT's adapter layout, or the merged full model).
/// </summary>
public static class OpenWeightsCommands
{
    /// <summary>The files of a Hugging Face directory the import takes; anything else there (README.md, .gitattributes, onnx/) stays behind.</summary>
    private static readonly string[] ImportedFiles =
    [
        "config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja",
        "model.safetensors.index.json",
    ];

    public static bool IsImportedFile(string name) => ImportedFiles.Contains(name) || name.EndsWith(".safetensors", StringComparison.Ordinal);

    public static Command Import(ConnectionOptions connection, CommandOutput output)
    {
        var directory = new Argument<DirectoryInfo>("directory") { Description = "A Hugging Face model directory: config.json, *.safetensors, tokenizer.json, tokenizer_config.json, ..." };
        var id = new Option<string>("--id") { Description = "The id to import it as, e.g. smollm2-135m-instruct.", Required = true };
        var import = new Command("import", "Import an open-weight base model (Llama, Qwen2, Mistral) from a Hugging Face directory; needs a platform admin key.") { directory, id };
        import.SetAction(async (parse, cancellationToken) =>
        {
            var source = parse.GetValue(directory)!;
            if (!source.Exists)
            {
                throw new CliException($"no such directory: {source.FullName}", 2);
            }

            var files = source.EnumerateFiles().Where(file => IsImportedFile(file.Name)).OrderBy(file => file.Name, StringComparer.Ordinal).ToList();
            if (files.All(file => file.Name != "config.json"))
            {
                throw new CliException($"{source.FullName} has no config.json: not a Hugging Face model directory.", 2);
            }

            var platform = connection.Open(parse);
            // Progress goes to stderr with --json, so that stdout holds only the model object.
            var progress = output.IsJson(parse) ? output.Error : output.Text;
            await progress.WriteLineAsync($"uploading {files.Count} files ({Size(files.Sum(file => file.Length))}) from {source.FullName}");
            using var form = new MultipartFormDataContent { { new StringContent(parse.GetValue(id)!), "id" } };
            foreach (var file in files)
            {
                // Each part streams from disk as the request is sent: nothing is read ahead of the socket.
                var part = new StreamContent(new AnnouncingFileStream(file, progress), 1 << 20);
                part.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
                form.Add(part, "file", file.Name);
            }

            var model = await platform.SendAsync(new HttpRequestMessage(HttpMethod.Post, new Uri(platform.Root, "../admin/v1/models")) { Content = form }, cancellationToken);
            var weights = model.TryGetProperty("open_weights", out var described) && described.ValueKind == JsonValueKind.Object ? described : default;
            await output.ShowAsync(parse, model, text => text.WriteLineAsync(weights.ValueKind == JsonValueKind.Object
                ? $"{Table.Text(model, "id")}  imported  {Table.Text(weights, "architecture")}  {Parameters(weights)} parameters  context {Table.Text(weights, "context_length")}  {Size(weights.GetProperty("weight_bytes").GetInt64())} of weights"
                : $"{Table.Text(model, "id")}  imported"));
            return 0;
        });
        return import;
    }

    public static Command Export(ConnectionOptions connection, CommandOutput output)
    {
        var model = new Argument<string>("model") { Description = "A model tuned from an imported base, or one of its checkpoints." };
        var format = new Option<string>("--format") { Description = "adapter (PEFT's layout, the default) or merged (the full model with the adapter folded in).", DefaultValueFactory = _ => "adapter" };
        format.AcceptOnlyFromAmong("adapter", "merged");
        var destination = new Option<FileInfo>("--output") { Description = "The zip file to write.", Required = true };
        var export = new Command("export", "Download a model tuned from an imported open-weight base as a zip.") { model, format, destination };
        export.SetAction(async (parse, cancellationToken) =>
        {
            var platform = connection.Open(parse);
            var id = parse.GetValue(model)!;
            var kind = parse.GetValue(format)!;
            var target = parse.GetValue(destination)!;
            using var response = await platform.Http.GetAsync($"models/{Uri.EscapeDataString(id)}/weights?format={kind}", HttpCompletionOption.ResponseHeadersRead, cancellationToken);
            if (!response.IsSuccessStatusCode)
            {
                throw platform.ErrorOf((int)response.StatusCode, await response.Content.ReadAsStringAsync(cancellationToken));
            }

            // Written beside the target and renamed when complete: an interrupted download never looks like a zip.
            var partial = target.FullName + ".partial";
            try
            {
                await using (var file = File.Create(partial))
                {
                    await (await response.Content.ReadAsStreamAsync(cancellationToken)).CopyToAsync(file, cancellationToken);
                }

                File.Move(partial, target.FullName, overwrite: true);
            }
            finally
            {
                File.Delete(partial);
            }

            // The download is a zip, not an API object: with --json, what was written, as JSON.
            var written = new FileInfo(target.FullName).Length;
            var described = JsonSerializer.SerializeToElement(new { path = target.FullName, bytes = written, format = kind, model = id });
            await output.ShowAsync(parse, described, text => text.WriteLineAsync($"{target.FullName}  {Size(written)}  {kind} of {id}"));
            return 0;
        });
        return export;
    }

    public static string Size(long bytes) => bytes switch
    {
        >= 1L << 30 => string.Create(CultureInfo.InvariantCulture, $"{bytes / (double)(1L << 30):0.0} GB"),
        >= 1L << 20 => string.Create(CultureInfo.InvariantCulture, $"{bytes / (double)(1L << 20):0.0} MB"),
        >= 1L << 10 => string.Create(CultureInfo.InvariantCulture, $"{bytes / 1024.0:0.0} KB"),
        _ => $"{bytes} bytes",
    };

    private static string Parameters(JsonElement weights) =>
        weights.TryGetProperty("parameters", out var count) && count.ValueKind == JsonValueKind.Number
            ? count.GetInt64() switch
            {
                >= 1_000_000_000 => string.Create(CultureInfo.InvariantCulture, $"{count.GetInt64() / 1e9:0.0}B"),
                >= 1_000_000 => string.Create(CultureInfo.InvariantCulture, $"{count.GetInt64() / 1e6:0.0}M"),
                var small => small.ToString(CultureInfo.InvariantCulture),
            }
            : "-";

    /// <summary>A file read for upload that prints its name and size when the upload reaches it: the import's progress.</summary>
    private sealed class AnnouncingFileStream(FileInfo file, TextWriter output) : FileStream(file.FullName, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, useAsync: true)
    {
        private bool _announced;

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            Announce();
            return await base.ReadAsync(buffer, cancellationToken);
        }

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken)
        {
            Announce();
            return base.ReadAsync(buffer, offset, count, cancellationToken);
        }

        public override Task CopyToAsync(Stream destination, int bufferSize, CancellationToken cancellationToken)
        {
            Announce();
            return base.CopyToAsync(destination, bufferSize, cancellationToken);
        }

        public override int Read(byte[] buffer, int offset, int count)
        {
            Announce();
            return base.Read(buffer, offset, count);
        }

        private void Announce()
        {
            if (!_announced)
            {
                _announced = true;
                output.WriteLine($"  {file.Name}  {Size(file.Length)}");
            }
        }
    }
}
