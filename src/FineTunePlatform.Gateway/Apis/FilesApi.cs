using FineTunePlatform.Contracts.Datasets;
using FineTunePlatform.Contracts.Training;
using FineTunePlatform.Gateway.Auth;
using FineTunePlatform.Gateway.OpenAI;
using System.Runtime.ExceptionServices;
using Grpc.Core;
using Microsoft.Extensions.Options;

namespace FineTunePlatform.Gateway.Apis;

/// <summary>OpenAI's Files API (/v1/files) over the dataset service, plus our validation report.</summary>
public static class FilesApi
{
    public static RouteGroupBuilder MapFilesApi(this IEndpointRouteBuilder app)
    {
        var files = app.MapGroup("/v1/files");
        files.MapPost("", UploadFile).RequireAuthorization(Policies.Member);
        files.MapGet("", ListFiles).RequireAuthorization(Policies.Reader);
        files.MapGet("/{fileId}", GetFile).RequireAuthorization(Policies.Reader);
        files.MapDelete("/{fileId}", DeleteFile).RequireAuthorization(Policies.Member);
        files.MapGet("/{fileId}/content", GetContent).RequireAuthorization(Policies.Reader);
        files.MapGet("/{fileId}/report", GetReport).RequireAuthorization(Policies.Reader);
        return files;
    }

    private static async Task<IResult> UploadFile(HttpRequest request, DatasetService.DatasetServiceClient datasets, IOptions<FileUploadLimits> limits, CancellationToken cancellationToken)
    {
        if (MultipartStreaming.RefuseDeclaredOver(request, limits.Value.MaxFileBytes, TooLarge(limits.Value.MaxFileBytes)) is { } refused)
        {
            return refused;
        }

        var reader = MultipartStreaming.CreateReader(request, limits.Value.MaxFileBytes);
        if (reader is null)
        {
            return OpenAIErrors.BadRequest("Expected a multipart/form-data body with the fields 'file' and 'purpose'.");
        }

        string? purpose = null;
        AsyncClientStreamingCall<UploadRequest, DatasetFile>? upload = null;
        try
        {
            for (var section = await reader.ReadNextSectionAsync(cancellationToken); section is not null; section = await reader.ReadNextSectionAsync(cancellationToken))
            {
                if (MultipartStreaming.IsField(section, "purpose", out _))
                {
                    purpose = await MultipartStreaming.ReadTextAsync(section, cancellationToken);
                }
                else if (MultipartStreaming.IsField(section, "file", out var disposition))
                {
                    if (upload is not null)
                    {
                        return OpenAIErrors.BadRequest("Only one 'file' may be uploaded per request.", "file");
                    }

                    if (purpose is not null && !IsUploadablePurpose(purpose))
                    {
                        return InvalidPurpose(purpose);
                    }

                    upload = datasets.Upload(cancellationToken: cancellationToken);
                    var filename = MultipartStreaming.FileName(disposition!);
                    await upload.RequestStream.WriteAsync(new UploadRequest { Metadata = new UploadMetadata { Filename = filename, Purpose = purpose ?? "" } }, cancellationToken);
                    await MultipartStreaming.ForwardAsync(section.Body,
                        chunk => upload.RequestStream.WriteAsync(new UploadRequest { Chunk = chunk }, cancellationToken), cancellationToken);
                }
            }

            if (upload is null)
            {
                return OpenAIErrors.BadRequest("'file' is a required field.", "file");
            }

            if (purpose is null)
            {
                return OpenAIErrors.BadRequest("'purpose' is a required field.", "purpose");
            }

            if (!IsUploadablePurpose(purpose))
            {
                return InvalidPurpose(purpose);
            }

            await upload.RequestStream.WriteAsync(new UploadRequest { Trailer = new UploadTrailer { Purpose = purpose } }, cancellationToken);
            await upload.RequestStream.CompleteAsync();
            return TypedResults.Ok(FileObject.From(await upload.ResponseAsync));
        }
        catch (Exception failure) when (upload is not null && !cancellationToken.IsCancellationRequested)
        {
            // A write can fail (even as a cancellation) because the service already answered: report its answer.
            var error = await MultipartStreaming.ServiceErrorOrAsync(upload, failure);
            if (error is RpcException { StatusCode: StatusCode.ResourceExhausted })
            {
                await MultipartStreaming.DrainAsync(request, limits.Value.MaxFileBytes);
            }

            ExceptionDispatchInfo.Throw(error);
            throw;
        }
        finally
        {
            // Disposing an unfinished call cancels it, and the dataset service deletes what it stored.
            upload?.Dispose();
        }
    }

    private static async Task<IResult> ListFiles(HttpRequest request, DatasetService.DatasetServiceClient datasets, string? purpose, string? order, string? after, CancellationToken cancellationToken)
    {
        var response = await datasets.ListAsync(new ListFilesRequest
        {
            Purpose = purpose ?? "",
            Limit = OpenAIList.Limit(request),
            Order = order ?? "",
            After = after ?? "",
        }, cancellationToken: cancellationToken);
        var data = response.Files.Select(FileObject.From).ToList();
        return TypedResults.Ok(new FileListObject("list", data, data.FirstOrDefault()?.Id, data.LastOrDefault()?.Id, response.HasMore));
    }

    private static async Task<IResult> GetFile(string fileId, DatasetService.DatasetServiceClient datasets, CancellationToken cancellationToken) =>
        TypedResults.Ok(FileObject.From(await datasets.GetAsync(new GetFileRequest { FileId = fileId }, cancellationToken: cancellationToken)));

    private static async Task<IResult> DeleteFile(string fileId, DatasetService.DatasetServiceClient datasets, CancellationToken cancellationToken)
    {
        var deleted = await datasets.DeleteAsync(new DeleteFileRequest { FileId = fileId }, cancellationToken: cancellationToken);
        return TypedResults.Ok(new DeletedObject(deleted.FileId, "file", deleted.Deleted));
    }

    private static async Task GetContent(string fileId, HttpContext context, DatasetService.DatasetServiceClient datasets, CancellationToken cancellationToken)
    {
        // The file is looked up first so a missing file is a clean 404 before any byte is sent.
        var file = await datasets.GetAsync(new GetFileRequest { FileId = fileId }, cancellationToken: cancellationToken);
        using var content = datasets.ReadContent(new ReadContentRequest { FileId = fileId }, cancellationToken: cancellationToken);
        context.Response.ContentType = "application/octet-stream";
        context.Response.ContentLength = file.Bytes;
        await foreach (var chunk in content.ResponseStream.ReadAllAsync(cancellationToken))
        {
            await context.Response.Body.WriteAsync(chunk.Data.Memory, cancellationToken);
        }
    }

    /// <summary>
    /// The validation report; `?model=` (a model or one fine-tuned from it) keeps only that model's fit: a built-in preset's is in the report, an open-weight
    /// model's is counted by the training service with the model's own tokenizer (what a job on it is charged).
    /// </summary>
    private static async Task<IResult> GetReport(string fileId, string? model, DatasetService.DatasetServiceClient datasets, TrainingService.TrainingServiceClient training,
        CancellationToken cancellationToken)
    {
        var report = await datasets.GetReportAsync(new GetReportRequest { FileId = fileId, Model = model ?? "" }, cancellationToken: cancellationToken);
        if (!string.IsNullOrEmpty(model) && report.ModelFits.Count == 0 && report.Status == "processed")
        {
            var fit = await training.GetTrainingFileFitAsync(new GetTrainingFileFitRequest { FileId = fileId, Model = model }, cancellationToken: cancellationToken);
            if (fit.Model.Length > 0)
            {
                report.ModelFits.Add(fit);
            }
        }

        return TypedResults.Ok(FileReportObject.From(report));
    }

    internal static IResult TooLarge(long limit) =>
        OpenAIErrors.PayloadTooLarge($"The file is larger than the limit of {limit} bytes.", "file");

    internal static bool IsUploadablePurpose(string purpose) => purpose is "fine-tune" or "batch" or "assistants" or "vision" or "user_data" or "evals";

    internal static IResult InvalidPurpose(string purpose) => OpenAIErrors.BadRequest(
        $"'{purpose}' is not one of ['fine-tune', 'batch', 'assistants', 'vision', 'user_data', 'evals'] - 'purpose'", "purpose");
}

/// <summary>The gateway's view of upload limits (`Datasets:Limits`, the same section the dataset service reads).</summary>
public sealed class FileUploadLimits
{
    public long MaxFileBytes { get; set; } = 512L * 1024 * 1024;

    public long MaxUploadPartBytes { get; set; } = 64L * 1024 * 1024;
}
