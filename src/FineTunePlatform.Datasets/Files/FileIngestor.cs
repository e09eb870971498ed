using System.Security.Cryptography;
using System.Text.Json;
using FineTunePlatform.Contracts.IntegrationEvents;
using FineTunePlatform.Datasets.Infrastructure;
using FineTunePlatform.ServiceDefaults.Storage;
using FineTunePlatform.Datasets.Validation;
using MassTransit;
using Microsoft.Extensions.Options;

namespace FineTunePlatform.Datasets.Files;

/// <summary>
/// Takes a file in as it streams: stores it in chunks, hashes it, validates it line by line on every core, and ends
/// with the file `processed` or `error` and its report. On any failure (a limit, a dropped connection) it deletes
/// what it stored, so no half-written file ever becomes visible.
/// </summary>
public sealed class FileIngestor(
    DatasetsDbContext db,
    ChunkStore chunks,
    IOptions<ValidationOptions> validationOptions,
    IOptions<FileLimits> limits,
    TimeProvider time,
    IPublishEndpoint publisher)
{
    public static readonly JsonSerializerOptions ReportJson = new(JsonSerializerDefaults.Web);

    /// <summary>Reads `content` to the end into a new file of the project.</summary>
    /// <param name="purpose">null when the caller learns it only after the content (then `latePurpose` gives it).</param>
    public async Task<DatasetFile> IngestAsync(
        string projectId,
        string filename,
        string? purpose,
        string? baseModel,
        long maxBytes,
        IAsyncEnumerable<ReadOnlyMemory<byte>> content,
        Func<string?> latePurpose,
        CancellationToken cancellationToken,
        string? expectedMd5 = null)
    {
        var file = new DatasetFile
        {
            Id = DatasetFile.NewId(),
            ProjectId = projectId,
            Filename = filename,
            Purpose = purpose ?? "",
            BaseModel = string.IsNullOrEmpty(baseModel) ? null : baseModel,
            CreatedAt = time.GetUtcNow(),
        };
        db.Files.Add(file);
        await db.SaveChangesAsync(cancellationToken);

        try
        {
            await StoreAndValidateAsync(file, maxBytes, content, latePurpose, expectedMd5, cancellationToken);
        }
        catch
        {
            // Not the request's token: the request may be the thing that was cancelled.
            await chunks.DeleteAsync(file.Id, CancellationToken.None);
            db.Files.Remove(file);
            await db.SaveChangesAsync(CancellationToken.None);
            throw;
        }

        if (FilePurposes.IsValidated(file.Purpose))
        {
            await publisher.Publish(new DatasetValidated(file.Id, file.ProjectId, file.Status, file.Format, file.ExampleCount, file.ErrorCount, file.TotalTokens), cancellationToken);
        }

        return file;
    }

    private async Task StoreAndValidateAsync(DatasetFile file, long maxBytes, IAsyncEnumerable<ReadOnlyMemory<byte>> content, Func<string?> latePurpose, string? expectedMd5, CancellationToken cancellationToken)
    {
        var validate = file.Purpose.Length == 0 || FilePurposes.IsValidated(file.Purpose);
        var validator = validate ? new DatasetValidator(validationOptions.Value, file.BaseModel, TokenCounter.Shared) : null;
        using var sha256 = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        using var md5 = expectedMd5 is null ? null : IncrementalHash.CreateHash(HashAlgorithmName.MD5);
        var chunkSize = limits.Value.ChunkBytes;
        var buffer = new byte[chunkSize];
        var buffered = 0;
        var chunkIndex = 0;
        long total = 0;

        await foreach (var piece in content.WithCancellation(cancellationToken))
        {
            total += piece.Length;
            if (total > maxBytes)
            {
                throw new FileTooLargeException(maxBytes);
            }

            sha256.AppendData(piece.Span);
            md5?.AppendData(piece.Span);
            if (validator is not null)
            {
                await validator.AppendAsync(piece, cancellationToken);
            }

            var remaining = piece;
            while (!remaining.IsEmpty)
            {
                var take = Math.Min(remaining.Length, chunkSize - buffered);
                remaining[..take].CopyTo(buffer.AsMemory(buffered));
                buffered += take;
                remaining = remaining[take..];
                if (buffered == chunkSize)
                {
                    await chunks.WriteAsync(file.Id, chunkIndex++, buffer, cancellationToken);
                    buffered = 0;
                }
            }
        }

        if (buffered > 0)
        {
            await chunks.WriteAsync(file.Id, chunkIndex, buffer.AsMemory(0, buffered), cancellationToken);
        }

        if (md5 is not null && !string.Equals(Convert.ToHexStringLower(md5.GetHashAndReset()), expectedMd5, StringComparison.OrdinalIgnoreCase))
        {
            throw new ContentChecksumMismatchException();
        }

        if (file.Purpose.Length == 0)
        {
            file.Purpose = latePurpose() ?? throw new MissingPurposeException();
        }

        file.Bytes = total;
        file.Sha256 = Convert.ToHexStringLower(sha256.GetHashAndReset());
        file.Status = FileStatuses.Processed;
        if (validator is not null)
        {
            var report = await validator.CompleteAsync(cancellationToken);
            if (FilePurposes.IsValidated(file.Purpose))
            {
                file.Status = report.IsValid ? FileStatuses.Processed : FileStatuses.Error;
                file.StatusDetails = report.StatusDetails;
                file.Format = report.Format;
                file.ExampleCount = report.ExampleCount;
                file.TotalTokens = report.TotalTokens;
                file.ErrorCount = report.ErrorCount;
                file.Report = JsonSerializer.Serialize(report, ReportJson);
            }
        }

        file.CompletedAt = time.GetUtcNow();
        await db.SaveChangesAsync(cancellationToken);
    }
}

public sealed class FileTooLargeException(long limit) : Exception($"The file is larger than the limit of {limit} bytes.")
{
    public long Limit { get; } = limit;
}

public sealed class ContentChecksumMismatchException() : Exception("The content's MD5 does not match the md5 given.");

public sealed class MissingPurposeException() : Exception("'purpose' is required.");
