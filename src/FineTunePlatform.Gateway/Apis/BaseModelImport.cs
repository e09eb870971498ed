using System.Runtime.ExceptionServices;
using FineTunePlatform.Contracts.Training;
using FineTunePlatform.Gateway.OpenAI;
using FineTunePlatform.Gateway.Routing;
using Grpc.Core;
using Microsoft.Extensions.Options;
using Microsoft.Net.Http.Headers;

namespace FineTunePlatform.Gateway.Apis;

/// <summary>
/// POST /admin/v1/models: imports an open-weight base model from a Hugging Face directory sent as multipart/form-data
/// — the field `id`, then one part per file whose `filename` is the file's name (config.json, the safetensors,
/// tokenizer files) — streamed part by part into the training service's ImportBaseModel in 1 MB chunks, never held
/// whole (bases are hundreds of megabytes). The training service checks everything before it stores anything; its
/// refusal (the file and the field or tensor it cannot run) comes back as a 400 naming them.
/// </summary>
public static class BaseModelImport
{
    /// <summary>Bytes per gRPC message: base weights are large, so fewer, bigger messages (under gRPC's 4 MB limit).</summary>
    private const int ChunkBytes = 1024 * 1024;

    public static async Task<IResult> ImportAsync(HttpRequest request, TrainingService.TrainingServiceClient training, IOptions<OpenWeightsOptions> options, CancellationToken cancellationToken)
    {
        var limit = options.Value.MaxImportBytes;
        var tooLarge = OpenAIErrors.PayloadTooLarge($"The model's files are larger than the import limit of {limit} bytes (Gateway:OpenWeights:MaxImportBytes).", "file");
        if (MultipartStreaming.RefuseDeclaredOver(request, limit, tooLarge) is { } refused)
        {
            return refused;
        }

        var reader = MultipartStreaming.CreateReader(request, limit);
        if (reader is null)
        {
            return OpenAIErrors.BadRequest("Expected a multipart/form-data body: the field 'id', then one file part per file of the model directory.", "id");
        }

        AsyncClientStreamingCall<BaseModelUpload, Model>? call = null;
        var files = 0;
        try
        {
            for (var section = await reader.ReadNextSectionAsync(cancellationToken); section is not null; section = await reader.ReadNextSectionAsync(cancellationToken))
            {
                if (!ContentDispositionHeaderValue.TryParse(section.ContentDisposition, out var disposition))
                {
                    continue;
                }

                if (disposition.IsFileDisposition())
                {
                    var name = MultipartStreaming.FileName(disposition);
                    var problem = call is null ? OpenAIErrors.BadRequest("The field 'id' must come before the files.", "id")
                        : name != Path.GetFileName(name) || name.Contains('\\') || name is "." or ".."
                            ? OpenAIErrors.BadRequest($"'{name}' is not a file name: send each file of the model directory with its bare name (e.g. config.json).", "filename")
                            : null;
                    if (problem is not null)
                    {
                        await MultipartStreaming.DrainAsync(request, limit);
                        return problem;
                    }

                    await call!.RequestStream.WriteAsync(new BaseModelUpload { File = new BaseModelFileHeader { Name = name } }, cancellationToken);
                    await MultipartStreaming.ForwardAsync(section.Body,
                        chunk => call.RequestStream.WriteAsync(new BaseModelUpload { Chunk = chunk }, cancellationToken), cancellationToken, ChunkBytes);
                    files++;
                }
                else if (MultipartStreaming.IsField(section, "id", out _))
                {
                    var id = await MultipartStreaming.ReadTextAsync(section, cancellationToken);
                    if (call is not null || id.Length == 0)
                    {
                        await MultipartStreaming.DrainAsync(request, limit);
                        return OpenAIErrors.BadRequest(call is not null ? "The field 'id' was given twice." : "'id' must not be empty.", "id");
                    }

                    call = training.ImportBaseModel(cancellationToken: cancellationToken);
                    await call.RequestStream.WriteAsync(new BaseModelUpload { ModelId = id }, cancellationToken);
                }
            }

            if (call is null)
            {
                return OpenAIErrors.BadRequest("'id' is a required field: the id to import the model as.", "id");
            }

            if (files == 0)
            {
                // Disposing the call cancels it: the training service stores nothing.
                return OpenAIErrors.BadRequest("The import has no files: send config.json, the safetensors weights and the tokenizer files as file parts.", "file");
            }

            await call.RequestStream.CompleteAsync();
            return TypedResults.Ok(ModelsApi.ModelObject.From(await call.ResponseAsync));
        }
        catch (Exception failure) when (call is not null && !cancellationToken.IsCancellationRequested)
        {
            // The training service refused the import while files were still coming: its answer is the error.
            var error = await MultipartStreaming.ServiceErrorOrAsync(call, failure);
            if (error is RpcException)
            {
                await MultipartStreaming.DrainAsync(request, limit);
            }

            ExceptionDispatchInfo.Throw(error);
            throw;
        }
        finally
        {
            call?.Dispose();
        }
    }
}
