using System.Runtime.CompilerServices;
using System.Text.Json;
using FineTunePlatform.Contracts.Datasets;
using FineTunePlatform.Datasets.Files;
using FineTunePlatform.Datasets.Infrastructure;
using FineTunePlatform.ServiceDefaults.Storage;
using FineTunePlatform.Datasets.Validation;
using Google.Protobuf;
using Grpc.Core;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using DatasetFileEntity = FineTunePlatform.Datasets.Files.DatasetFile;
using ProtoFile = FineTunePlatform.Contracts.Datasets.DatasetFile;

namespace FineTunePlatform.Datasets.Grpc;

/// <summary>The gRPC surface of the dataset service: checks the caller, calls the domain, maps to the contract.</summary>
public sealed class DatasetGrpcService(
    DatasetsDbContext db,
    FileIngestor ingestor,
    UploadSessions uploads,
    ChunkStore chunks,
    IOptions<FileLimits> limits) : DatasetService.DatasetServiceBase
{

    public override async Task<ProtoFile> Upload(IAsyncStreamReader<UploadRequest> requestStream, ServerCallContext context)
    {
        var caller = context.GetCaller();
        if (!await requestStream.MoveNext(context.CancellationToken) || requestStream.Current.PartCase != UploadRequest.PartOneofCase.Metadata)
        {
            throw PlatformException.InvalidArgument("The first upload message must carry the file's metadata.");
        }

        var metadata = requestStream.Current.Metadata;
        var filename = FileNames.Check(metadata.Filename, "file");

        var purpose = NullIfEmpty(metadata.Purpose);
        if (purpose is not null && !FilePurposes.IsKnown(purpose))
        {
            throw UnknownPurpose(purpose);
        }

        string? latePurpose = null;
        async IAsyncEnumerable<ReadOnlyMemory<byte>> Content([EnumeratorCancellation] CancellationToken cancellationToken = default)
        {
            while (await requestStream.MoveNext(cancellationToken))
            {
                switch (requestStream.Current.PartCase)
                {
                    case UploadRequest.PartOneofCase.Chunk:
                        yield return requestStream.Current.Chunk.Memory;
                        break;
                    case UploadRequest.PartOneofCase.Trailer:
                        latePurpose = requestStream.Current.Trailer.Purpose;
                        if (!FilePurposes.IsKnown(latePurpose))
                        {
                            throw UnknownPurpose(latePurpose);
                        }

                        break;
                    default:
                        throw PlatformException.InvalidArgument("Only content chunks and a trailer may follow the metadata.");
                }
            }
        }

        var file = await IngestMappingErrorsAsync(() => ingestor.IngestAsync(
            caller.ProjectId, filename, purpose, NullIfEmpty(metadata.BaseModel), limits.Value.MaxFileBytes,
            Content(context.CancellationToken), () => latePurpose, context.CancellationToken));
        return ToContract(file);
    }

    public override async Task<ProtoFile> Get(GetFileRequest request, ServerCallContext context)
    {
        var caller = context.GetCaller();
        return ToContract(await FindAsync(caller, request.FileId, context.CancellationToken));
    }

    public override async Task<ListFilesResponse> List(ListFilesRequest request, ServerCallContext context)
    {
        var caller = context.GetCaller();
        var limit = request.Limit == 0 ? 10_000 : request.Limit;
        if (limit is < 1 or > 10_000)
        {
            throw PlatformException.InvalidArgument("'limit' must be between 1 and 10000.", "limit");
        }

        var descending = !PageSizes.Ascending(request.Order, defaultAscending: false);

        var query = db.Files.AsNoTracking().Where(file => file.ProjectId == caller.ProjectId && file.CompletedAt != null);
        if (request.Purpose.Length > 0)
        {
            query = query.Where(file => file.Purpose == request.Purpose);
        }

        if (request.After.Length > 0)
        {
            var cursor = await db.Files.AsNoTracking()
                .Where(file => file.Id == request.After && file.ProjectId == caller.ProjectId)
                .Select(file => new { file.CreatedAt, file.Id })
                .SingleOrDefaultAsync(context.CancellationToken)
                ?? throw PlatformException.InvalidArgument($"No file with id '{request.After}' to list after.", "after");
            query = descending
                ? query.Where(file => file.CreatedAt < cursor.CreatedAt || (file.CreatedAt == cursor.CreatedAt && string.Compare(file.Id, cursor.Id) < 0))
                : query.Where(file => file.CreatedAt > cursor.CreatedAt || (file.CreatedAt == cursor.CreatedAt && string.Compare(file.Id, cursor.Id) > 0));
        }

        query = descending
            ? query.OrderByDescending(file => file.CreatedAt).ThenByDescending(file => file.Id)
            : query.OrderBy(file => file.CreatedAt).ThenBy(file => file.Id);
        var page = await query.Take(limit + 1).ToListAsync(context.CancellationToken);
        var response = new ListFilesResponse { HasMore = page.Count > limit };
        response.Files.AddRange(page.Take(limit).Select(ToContract));
        return response;
    }

    public override async Task<DeleteFileResponse> Delete(DeleteFileRequest request, ServerCallContext context)
    {
        var caller = context.GetCaller();
        var file = await FindAsync(caller, request.FileId, context.CancellationToken);
        db.Files.Remove(file);
        await db.SaveChangesAsync(context.CancellationToken);
        await chunks.DeleteAsync(file.Id, context.CancellationToken);
        return new DeleteFileResponse { FileId = file.Id, Deleted = true };
    }

    public override async Task ReadContent(ReadContentRequest request, IServerStreamWriter<Contracts.Datasets.ContentChunk> responseStream, ServerCallContext context)
    {
        var caller = context.GetCaller();
        var file = await FindAsync(caller, request.FileId, context.CancellationToken);
        await foreach (var data in chunks.ReadAsync(file.Id, context.CancellationToken))
        {
            await responseStream.WriteAsync(new Contracts.Datasets.ContentChunk { Data = UnsafeByteOperations.UnsafeWrap(data) }, context.CancellationToken);
        }
    }

    public override async Task<ValidationReport> GetReport(GetReportRequest request, ServerCallContext context)
    {
        var caller = context.GetCaller();
        var file = await FindAsync(caller, request.FileId, context.CancellationToken);
        if (file.Report is null)
        {
            throw PlatformException.NotFound($"File '{file.Id}' (purpose {file.Purpose}) was not validated, so it has no report.", "file_id");
        }

        return ReportMapping.ToContract(file, JsonSerializer.Deserialize<DatasetReport>(file.Report, FileIngestor.ReportJson)!, NullIfEmpty(request.Model));
    }

    public override async Task<Contracts.Datasets.UploadSession> CreateUploadSession(CreateUploadSessionRequest request, ServerCallContext context)
    {
        var caller = context.GetCaller();
        return await uploads.CreateAsync(caller.ProjectId, request, context.CancellationToken);
    }

    public override async Task<Contracts.Datasets.UploadPart> AddUploadPart(IAsyncStreamReader<UploadPartRequest> requestStream, ServerCallContext context)
    {
        var caller = context.GetCaller();
        return await IngestMappingErrorsAsync(() => uploads.AddPartAsync(caller.ProjectId, requestStream, context.CancellationToken));
    }

    public override async Task<Contracts.Datasets.UploadSession> CompleteUploadSession(CompleteUploadSessionRequest request, ServerCallContext context)
    {
        var caller = context.GetCaller();
        return await IngestMappingErrorsAsync(() => uploads.CompleteAsync(caller.ProjectId, request, context.CancellationToken));
    }

    public override async Task<Contracts.Datasets.UploadSession> CancelUploadSession(CancelUploadSessionRequest request, ServerCallContext context)
    {
        var caller = context.GetCaller();
        return await uploads.CancelAsync(caller.ProjectId, request.UploadId, context.CancellationToken);
    }

    /// <summary>Every file query goes through here: a file of another project is as absent as a missing one.</summary>
    private async Task<DatasetFileEntity> FindAsync(InternalCaller caller, string fileId, CancellationToken cancellationToken) =>
        await db.Files.SingleOrDefaultAsync(file => file.Id == fileId && file.ProjectId == caller.ProjectId && file.CompletedAt != null, cancellationToken)
        ?? throw PlatformException.NotFound($"No such File object: {fileId}", "file_id");

    public static ProtoFile ToContract(DatasetFileEntity file) => new()
    {
        Id = file.Id,
        ProjectId = file.ProjectId,
        Filename = file.Filename,
        Purpose = file.Purpose,
        Bytes = file.Bytes,
        CreatedAt = file.CreatedAt.ToUnixTimeSeconds(),
        Status = file.Status,
        StatusDetails = file.StatusDetails ?? "",
        Sha256 = file.Sha256,
        Format = file.Format ?? "",
        ExampleCount = file.ExampleCount,
        TotalTokens = file.TotalTokens,
        ErrorCount = file.ErrorCount,
    };

    private static async Task<T> IngestMappingErrorsAsync<T>(Func<Task<T>> ingest)
    {
        try
        {
            return await ingest();
        }
        catch (FileTooLargeException ex)
        {
            throw PlatformException.ResourceExhausted(ex.Message, "file", "payload_too_large");
        }
        catch (ContentChecksumMismatchException ex)
        {
            throw PlatformException.InvalidArgument(ex.Message, "md5", "checksum_mismatch");
        }
        catch (MissingPurposeException ex)
        {
            throw PlatformException.InvalidArgument(ex.Message, "purpose");
        }
    }

    private static PlatformException UnknownPurpose(string purpose) => PlatformException.InvalidArgument(
        $"'{purpose}' is not a valid purpose. Expected one of: {string.Join(", ", FilePurposes.Uploadable)}.", "purpose");

    private static string? NullIfEmpty(string value) => string.IsNullOrWhiteSpace(value) ? null : value.Trim();
}
