using System.Runtime.CompilerServices;
using FineTunePlatform.Contracts.Datasets;
using FineTunePlatform.Datasets.Grpc;
using FineTunePlatform.Datasets.Infrastructure;
using FineTunePlatform.ServiceDefaults.Storage;
using Grpc.Core;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using SessionContract = FineTunePlatform.Contracts.Datasets.UploadSession;
using PartContract = FineTunePlatform.Contracts.Datasets.UploadPart;

namespace FineTunePlatform.Datasets.Files;

/// <summary>
/// OpenAI's Uploads API: a session of up to 8 GB collects parts of up to 64 MB each (stored in chunks as they stream),
/// then completes by streaming the parts in the order given through the same ingest path as a single upload.
/// </summary>
public sealed class UploadSessions(DatasetsDbContext db, ChunkStore chunks, FileIngestor ingestor, IOptions<FileLimits> limits, TimeProvider time)
{
    public async Task<SessionContract> CreateAsync(string projectId, CreateUploadSessionRequest request, CancellationToken cancellationToken)
    {
        var filename = FileNames.Check(request.Filename, "filename");

        if (!FilePurposes.Uploadable.Contains(request.Purpose))
        {
            throw PlatformException.InvalidArgument($"'{request.Purpose}' is not a valid purpose. Expected one of: {string.Join(", ", FilePurposes.Uploadable)}.", "purpose");
        }

        if (request.Bytes <= 0)
        {
            throw PlatformException.InvalidArgument("'bytes' must be a positive number.", "bytes");
        }

        if (request.Bytes > limits.Value.MaxUploadSessionBytes)
        {
            throw PlatformException.ResourceExhausted($"An upload may hold at most {limits.Value.MaxUploadSessionBytes} bytes.", "bytes", "payload_too_large");
        }

        var now = time.GetUtcNow();
        var session = new UploadSession
        {
            Id = UploadSession.NewId(),
            ProjectId = projectId,
            Filename = filename,
            Purpose = request.Purpose,
            Bytes = request.Bytes,
            MimeType = string.IsNullOrWhiteSpace(request.MimeType) ? null : request.MimeType,
            CreatedAt = now,
            ExpiresAt = now + limits.Value.UploadSessionLifetime,
        };
        db.UploadSessions.Add(session);
        await db.SaveChangesAsync(cancellationToken);
        return ToContract(session, null);
    }

    public async Task<PartContract> AddPartAsync(string projectId, IAsyncStreamReader<UploadPartRequest> requestStream, CancellationToken cancellationToken)
    {
        if (!await requestStream.MoveNext(cancellationToken) || requestStream.Current.PartCase != UploadPartRequest.PartOneofCase.UploadId)
        {
            throw PlatformException.InvalidArgument("The first message of a part must name its upload.");
        }

        var session = await FindPendingAsync(projectId, requestStream.Current.UploadId, cancellationToken);
        var part = new UploadPart { Id = UploadPart.NewId(), UploadId = session.Id, CreatedAt = time.GetUtcNow() };
        db.UploadParts.Add(part);
        await db.SaveChangesAsync(cancellationToken);
        try
        {
            var chunkIndex = 0;
            while (await requestStream.MoveNext(cancellationToken))
            {
                var data = requestStream.Current.Chunk.Memory;
                part.Bytes += data.Length;
                if (part.Bytes > limits.Value.MaxUploadPartBytes)
                {
                    throw new FileTooLargeException(limits.Value.MaxUploadPartBytes);
                }

                // Gateway chunks are small; parts are read back whole by index order, so each message is a chunk.
                await chunks.WriteAsync(part.Id, chunkIndex++, data, cancellationToken);
            }

            part.CompletedAt = time.GetUtcNow();
            await db.SaveChangesAsync(cancellationToken);
        }
        catch
        {
            await chunks.DeleteAsync(part.Id, CancellationToken.None);
            db.UploadParts.Remove(part);
            await db.SaveChangesAsync(CancellationToken.None);
            throw;
        }

        return new PartContract { Id = part.Id, UploadId = session.Id, CreatedAt = part.CreatedAt.ToUnixTimeSeconds(), Bytes = part.Bytes };
    }

    public async Task<SessionContract> CompleteAsync(string projectId, CompleteUploadSessionRequest request, CancellationToken cancellationToken)
    {
        var session = await FindPendingAsync(projectId, request.UploadId, cancellationToken);
        var partIds = request.PartIds.ToList();
        if (partIds.Count == 0 || partIds.Distinct(StringComparer.Ordinal).Count() != partIds.Count)
        {
            throw PlatformException.InvalidArgument("'part_ids' must list each part of the upload once.", "part_ids");
        }

        var parts = await db.UploadParts.AsNoTracking()
            .Where(part => part.UploadId == session.Id && part.CompletedAt != null && partIds.Contains(part.Id))
            .ToDictionaryAsync(part => part.Id, cancellationToken);
        var unknown = partIds.FirstOrDefault(id => !parts.ContainsKey(id));
        if (unknown is not null)
        {
            throw PlatformException.InvalidArgument($"Part '{unknown}' does not belong to upload '{session.Id}'.", "part_ids");
        }

        var total = partIds.Sum(id => parts[id].Bytes);
        if (total != session.Bytes)
        {
            throw PlatformException.InvalidArgument($"The parts hold {total} bytes but the upload was created for {session.Bytes}.", "part_ids");
        }

        async IAsyncEnumerable<ReadOnlyMemory<byte>> Content([EnumeratorCancellation] CancellationToken token = default)
        {
            foreach (var id in partIds)
            {
                await foreach (var chunk in chunks.ReadAsync(id, token))
                {
                    yield return chunk;
                }
            }
        }

        var file = await ingestor.IngestAsync(projectId, session.Filename, session.Purpose, null, session.Bytes, Content(cancellationToken),
            () => session.Purpose, cancellationToken, string.IsNullOrWhiteSpace(request.Md5) ? null : request.Md5.Trim());

        session.Status = UploadStatuses.Completed;
        session.FileId = file.Id;
        await db.SaveChangesAsync(cancellationToken);
        await DeletePartsAsync(session.Id, cancellationToken);
        return ToContract(session, file);
    }

    public async Task<SessionContract> CancelAsync(string projectId, string uploadId, CancellationToken cancellationToken)
    {
        var session = await FindPendingAsync(projectId, uploadId, cancellationToken);
        session.Status = UploadStatuses.Cancelled;
        await db.SaveChangesAsync(cancellationToken);
        await DeletePartsAsync(session.Id, cancellationToken);
        return ToContract(session, null);
    }

    private async Task DeletePartsAsync(string uploadId, CancellationToken cancellationToken)
    {
        var partIds = await db.UploadParts.Where(part => part.UploadId == uploadId).Select(part => part.Id).ToListAsync(cancellationToken);
        foreach (var partId in partIds)
        {
            await chunks.DeleteAsync(partId, cancellationToken);
        }

        await db.UploadParts.Where(part => part.UploadId == uploadId).ExecuteDeleteAsync(cancellationToken);
    }

    private async Task<UploadSession> FindPendingAsync(string projectId, string uploadId, CancellationToken cancellationToken)
    {
        var session = await db.UploadSessions.SingleOrDefaultAsync(upload => upload.Id == uploadId && upload.ProjectId == projectId, cancellationToken)
            ?? throw PlatformException.NotFound($"No such Upload object: {uploadId}", "upload_id");
        var status = session.EffectiveStatus(time.GetUtcNow());
        if (status != UploadStatuses.Pending)
        {
            throw PlatformException.FailedPrecondition($"Upload '{uploadId}' is {status}; only pending uploads take parts, complete or cancel.", "upload_id");
        }

        return session;
    }

    private SessionContract ToContract(UploadSession session, DatasetFile? file)
    {
        var contract = new SessionContract
        {
            Id = session.Id,
            Filename = session.Filename,
            Purpose = session.Purpose,
            Bytes = session.Bytes,
            CreatedAt = session.CreatedAt.ToUnixTimeSeconds(),
            ExpiresAt = session.ExpiresAt.ToUnixTimeSeconds(),
            Status = session.EffectiveStatus(time.GetUtcNow()),
        };
        if (file is not null)
        {
            contract.File = DatasetGrpcService.ToContract(file);
        }

        return contract;
    }
}
