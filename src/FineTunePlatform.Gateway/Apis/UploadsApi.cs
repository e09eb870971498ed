using FineTunePlatform.Contracts.Datasets;
using FineTunePlatform.Gateway.Auth;
using FineTunePlatform.Gateway.OpenAI;
using System.Runtime.ExceptionServices;
using Grpc.Core;
using Microsoft.Extensions.Options;

namespace FineTunePlatform.Gateway.Apis;

/// <summary>OpenAI's Uploads API (/v1/uploads): files up to 8 GB in parts of up to 64 MB.</summary>
public static class UploadsApi
{
    public static RouteGroupBuilder MapUploadsApi(this IEndpointRouteBuilder app)
    {
        var uploads = app.MapGroup("/v1/uploads").RequireAuthorization(Policies.Member);
        uploads.MapPost("", CreateUpload);
        uploads.MapPost("/{uploadId}/parts", AddPart);
        uploads.MapPost("/{uploadId}/complete", CompleteUpload);
        uploads.MapPost("/{uploadId}/cancel", CancelUpload);
        return uploads;
    }

    private static async Task<IResult> CreateUpload(HttpRequest body, DatasetService.DatasetServiceClient datasets, CancellationToken cancellationToken)
    {
        var request = await RequestBody.ReadAsync<CreateUploadRequest>(body, cancellationToken);
        if (string.IsNullOrWhiteSpace(request.Filename))
        {
            return OpenAIErrors.BadRequest("'filename' is a required property.", "filename");
        }

        if (request.Purpose is null || !FilesApi.IsUploadablePurpose(request.Purpose))
        {
            return FilesApi.InvalidPurpose(request.Purpose ?? "");
        }

        if (request.Bytes is not > 0)
        {
            return OpenAIErrors.BadRequest("'bytes' must be a positive integer.", "bytes");
        }

        var upload = await datasets.CreateUploadSessionAsync(new CreateUploadSessionRequest
        {
            Filename = request.Filename,
            Purpose = request.Purpose,
            Bytes = request.Bytes.Value,
            MimeType = request.MimeType ?? "",
        }, cancellationToken: cancellationToken);
        return TypedResults.Ok(UploadObject.From(upload));
    }

    private static async Task<IResult> AddPart(string uploadId, HttpRequest request, DatasetService.DatasetServiceClient datasets, IOptions<FileUploadLimits> limits, CancellationToken cancellationToken)
    {
        if (MultipartStreaming.RefuseDeclaredOver(request, limits.Value.MaxUploadPartBytes, FilesApi.TooLarge(limits.Value.MaxUploadPartBytes)) is { } refused)
        {
            return refused;
        }

        var reader = MultipartStreaming.CreateReader(request, limits.Value.MaxUploadPartBytes);
        if (reader is null)
        {
            return OpenAIErrors.BadRequest("Expected a multipart/form-data body with the field 'data'.", "data");
        }

        for (var section = await reader.ReadNextSectionAsync(cancellationToken); section is not null; section = await reader.ReadNextSectionAsync(cancellationToken))
        {
            if (!MultipartStreaming.IsField(section, "data", out _))
            {
                continue;
            }

            using var call = datasets.AddUploadPart(cancellationToken: cancellationToken);
            try
            {
                await call.RequestStream.WriteAsync(new UploadPartRequest { UploadId = uploadId }, cancellationToken);
                await MultipartStreaming.ForwardAsync(section.Body,
                    chunk => call.RequestStream.WriteAsync(new UploadPartRequest { Chunk = chunk }, cancellationToken), cancellationToken);
                await call.RequestStream.CompleteAsync();
                var part = await call.ResponseAsync;
                return TypedResults.Ok(new UploadPartObject(part.Id, "upload.part", part.CreatedAt, part.UploadId));
            }
            catch (Exception failure) when (!cancellationToken.IsCancellationRequested)
            {
                var error = await MultipartStreaming.ServiceErrorOrAsync(call, failure);
                if (error is RpcException)
                {
                    await MultipartStreaming.DrainAsync(request, limits.Value.MaxUploadPartBytes);
                }

                ExceptionDispatchInfo.Throw(error);
                throw;
            }
        }

        return OpenAIErrors.BadRequest("'data' is a required field.", "data");
    }

    private static async Task<IResult> CompleteUpload(string uploadId, HttpRequest body, DatasetService.DatasetServiceClient datasets, CancellationToken cancellationToken)
    {
        var request = await RequestBody.ReadAsync<CompleteUploadRequest>(body, cancellationToken);
        // The dataset service checks the parts after the upload itself, so an unknown upload is a 404 whatever the body says.
        var completion = new CompleteUploadSessionRequest { UploadId = uploadId, Md5 = request.Md5 ?? "" };
        completion.PartIds.AddRange(request.PartIds ?? []);
        // Completing streams every part through validation: allow it the time a big file needs.
        var upload = await datasets.CompleteUploadSessionAsync(completion, cancellationToken: cancellationToken);
        return TypedResults.Ok(UploadObject.From(upload));
    }

    private static async Task<IResult> CancelUpload(string uploadId, DatasetService.DatasetServiceClient datasets, CancellationToken cancellationToken) =>
        TypedResults.Ok(UploadObject.From(await datasets.CancelUploadSessionAsync(new CancelUploadSessionRequest { UploadId = uploadId }, cancellationToken: cancellationToken)));
}
