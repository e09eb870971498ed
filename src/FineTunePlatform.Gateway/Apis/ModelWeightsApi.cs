using System.IO.Compression;
using System.IO.Pipelines;
using System.Text.Json.Nodes;
using FineTunePlatform.Gateway.Auth;
using FineTunePlatform.Gateway.OpenAI;
using FineTunePlatform.Gateway.Routing;
using FineTunePlatform.OpenWeights;
using Microsoft.Net.Http.Headers;

namespace FineTunePlatform.Gateway.Apis;

/// <summary>
/// GET /v1/models/{id}/weights (our addition): a model tuned from an imported open-weight base, or one of its
/// checkpoints, as a zip streamed to the response — `?format=adapter` (the default) in PEFT's layout
/// (adapter_config.json and adapter_model.safetensors, loadable with PeftModel.from_pretrained on the base), or
/// `?format=merged` the full model with the adapter folded in (safetensors, config.json and the tokenizer files;
/// `dtype` float32, float16 or bfloat16, by default the base's torch_dtype). Whoever may see the model (its owner, a
/// project it was shared with) may export it: visibility is the training service's GetModel, as for chat.
/// </summary>
public static class ModelWeightsApi
{
    /// <summary>Handled inside /v1/models/{**id} (model ids may hold '/'), so a model's own id cannot end with it.</summary>
    public const string PathSuffix = "/weights";

    public static async Task<IResult> ExportAsync(string modelId, HttpContext context, ModelRouter router, OpenWeightsRuntime openWeights, CancellationToken cancellationToken)
    {
        var format = context.Request.Query["format"].ToString() is { Length: > 0 } given ? given : "adapter";
        if (format is not ("adapter" or "merged"))
        {
            return OpenAIErrors.BadRequest($"Invalid value '{format}' for format: expected 'adapter' (PEFT's layout) or 'merged' (the full model).", "format");
        }

        var requestedType = context.Request.Query["dtype"].ToString();
        if (requestedType.Length > 0 && ParseDType(requestedType) is null)
        {
            return OpenAIErrors.BadRequest($"Invalid value '{requestedType}' for dtype: expected float32, float16 or bfloat16.", "dtype");
        }

        var notExportable = OpenAIErrors.BadRequest(
            $"The model `{modelId}` is not tuned from an imported open-weight base: only such models and their checkpoints can be exported.", "model", "model_not_exportable");
        if (LocalModelRuntime.IsLocalModel(modelId) || router.Find(modelId) is not null)
        {
            return notExportable;
        }

        var headers = context.GetCaller().ToMetadata();
        if (await openWeights.FindAsync(modelId, headers, cancellationToken) is not { } found)
        {
            return ChatApi.ModelNotFound(modelId);
        }

        if (found.Backend != ModelBackends.OpenWeights)
        {
            return notExportable;
        }

        if (OpenWeightsRuntime.IsBase(found))
        {
            return OpenAIErrors.BadRequest(
                $"The model `{modelId}` is an imported base: it has no adapter to export, and its files are the ones that were imported. Export a model tuned from it.", "model", "model_not_exportable");
        }

        var work = Directory.CreateDirectory(Path.Combine(Path.GetTempPath(), $"ftp-export-{Guid.NewGuid():N}")).FullName;
        try
        {
            if (format == "adapter")
            {
                var config = await openWeights.ReadBaseConfigAsync(found, headers, cancellationToken);
                var adapter = (await openWeights.LoadAdapterAsync(found, config, headers, cancellationToken))!;
                PeftAdapter.Save(adapter, work, found.RootModel);
            }
            else
            {
                var loaded = await openWeights.LoadBaseAsync(found, headers, cancellationToken);
                var adapter = await openWeights.LoadAdapterAsync(found, loaded.Model.Model.Config, headers, cancellationToken);
                var dtype = ParseDType(requestedType) ?? BaseDType(loaded.Model.Model.Config);
                // Folding the adapter into every matrix is seconds of CPU: off the request's thread.
                await Task.Run(() => MergedExport.Write(loaded.Model.Model, adapter, loaded.Directory, work, dtype), cancellationToken);
                // MergedExport copies the tokenizer files; a template kept in its own file must travel too.
                var template = Path.Combine(loaded.Directory, "chat_template.jinja");
                if (File.Exists(template))
                {
                    File.Copy(template, Path.Combine(work, "chat_template.jinja"));
                }
            }

            return new ZipOfDirectory(work, $"{SafeFileName(modelId)}-{format}.zip");
        }
        catch
        {
            Directory.Delete(work, recursive: true);
            throw;
        }
    }

    private static TensorDType? ParseDType(string name) => name switch
    {
        "float32" => TensorDType.F32,
        "float16" => TensorDType.F16,
        "bfloat16" => TensorDType.BF16,
        _ => null,
    };

    /// <summary>The type the base was published in (config.json's torch_dtype), float32 when it says none.</summary>
    private static TensorDType BaseDType(ModelConfig config) =>
        (JsonNode.Parse(config.Json)?["torch_dtype"] as JsonValue)?.TryGetValue<string>(out var name) == true && ParseDType(name) is { } dtype ? dtype : TensorDType.F32;

    private static string SafeFileName(string modelId) =>
        string.Concat(modelId.Select(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '-' or '_' ? c : '-'));

    /// <summary>
    /// Streams a prepared directory as a zip (weights stored, JSON deflated), then deletes it. ZipArchive writes
    /// synchronously (even its async API: an entry's stream is closed with sync writes), which Kestrel refuses, so the
    /// archive is written on a thread of its own into a pipe and the pipe is copied to the response asynchronously: a
    /// few megabytes in flight, never the whole file.
    /// </summary>
    private sealed class ZipOfDirectory(string directory, string fileName) : IResult
    {
        public async Task ExecuteAsync(HttpContext httpContext)
        {
            var pipe = new Pipe(new PipeOptions(pauseWriterThreshold: 4 << 20, resumeWriterThreshold: 2 << 20));
            var writing = Task.Factory.StartNew(() => Write(pipe.Writer, httpContext.RequestAborted), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
            try
            {
                httpContext.Response.ContentType = "application/zip";
                httpContext.Response.Headers.ContentDisposition = new ContentDispositionHeaderValue("attachment") { FileName = fileName }.ToString();
                await pipe.Reader.CopyToAsync(httpContext.Response.Body, httpContext.RequestAborted);
            }
            finally
            {
                // A client that went away stops the writer at its next chunk.
                await pipe.Reader.CompleteAsync();
                await writing;
                Directory.Delete(directory, recursive: true);
            }
        }

        private void Write(PipeWriter writer, CancellationToken cancellationToken)
        {
            try
            {
                // The writer is completed below, with the error if there was one: disposing the archive must not complete it.
                using (var zip = new ZipArchive(writer.AsStream(leaveOpen: true), ZipArchiveMode.Create))
                {
                    foreach (var path in Directory.EnumerateFiles(directory).Order(StringComparer.Ordinal))
                    {
                        // Float weights barely compress: storing them saves minutes of CPU on a large model.
                        var entry = zip.CreateEntry(Path.GetFileName(path), path.EndsWith(".safetensors", StringComparison.Ordinal) ? CompressionLevel.NoCompression : CompressionLevel.Optimal);
                        using var target = entry.Open();
                        using var source = File.OpenRead(path);
                        var buffer = new byte[1 << 20];
                        int read;
                        while ((read = source.Read(buffer)) > 0)
                        {
                            cancellationToken.ThrowIfCancellationRequested();
                            target.Write(buffer, 0, read);
                        }
                    }
                }

                writer.Complete();
            }
            catch (Exception ex)
            {
                writer.Complete(ex);
            }
        }
    }
}
