using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using FineTunePlatform.Contracts.IntegrationEvents;
using FineTunePlatform.Contracts.Training;
using FineTunePlatform.LocalModels;
using FineTunePlatform.OpenWeights;
using FineTunePlatform.ServiceDefaults.Messaging;
using FineTunePlatform.ServiceDefaults.Storage;
using FineTunePlatform.Training.Infrastructure;
using Grpc.Core;
using Microsoft.EntityFrameworkCore;
using Npgsql;

namespace FineTunePlatform.Training.Models;

/// <summary>
/// Imported open-weight base models: the admin's import (the directory is received into a scratch directory, checked
/// completely by <see cref="HuggingFaceModel.Inspect"/> — config, every tensor header, tokenizer, chat template — and
/// only then stored), their files for workers and runtimes, and deletion when nothing depends on them.
/// </summary>
public sealed partial class BaseModelLibrary(TrainingDbContext db, ChunkStore chunks, OutboxSignal outbox, TimeProvider time, ILogger<BaseModelLibrary> logger)
{
    private const int ChunkBytes = 1024 * 1024;

    /// <summary>The files an import keeps; anything else in a downloaded directory (README.md, .gitattributes, onnx/) is not sent by ftune and refused here.</summary>
    public static readonly IReadOnlyList<string> KnownFiles =
    [
        "config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja",
        "model.safetensors.index.json",
    ];

    public static bool IsImportedFile(string name) =>
        KnownFiles.Contains(name) || (name.EndsWith(".safetensors", StringComparison.Ordinal) && SafeFileName().IsMatch(name));

    public async Task<VisibleModel> ImportAsync(InternalCaller caller, IAsyncStreamReader<BaseModelUpload> upload, CancellationToken cancellationToken)
    {
        RequireAdmin(caller, "import base models");
        if (!await upload.MoveNext(cancellationToken) || upload.Current.PartCase != BaseModelUpload.PartOneofCase.ModelId)
        {
            throw PlatformException.InvalidArgument("An import starts with the model id.", "id");
        }

        var modelId = upload.Current.ModelId;
        await CheckNewIdAsync(modelId, cancellationToken);
        var scratch = Directory.CreateTempSubdirectory("ftp-import-");
        try
        {
            var received = await ReceiveAsync(upload, scratch.FullName, cancellationToken);
            var summary = Inspect(scratch.FullName, received);
            var model = new BaseModel
            {
                Id = modelId,
                Architecture = summary.Config.Architecture,
                Parameters = summary.ParameterCount,
                ContextLength = summary.Config.MaxPositionEmbeddings,
                WeightBytes = summary.WeightBytes,
                FilesSha256 = DirectoryHash(received),
                CreatedAt = time.GetUtcNow(),
                Files = [.. received.Select(file => new BaseModelFile { ModelId = modelId, Name = file.Name, Bytes = file.Bytes, Sha256 = file.Sha256 })],
            };
            await StoreAsync(model, received, scratch.FullName, cancellationToken);

            LogImported(logger, modelId, model.Architecture, model.Parameters, received.Count);
            return ModelCatalog.ToVisible(model);
        }
        finally
        {
            scratch.Delete(recursive: true);
        }
    }


    public async IAsyncEnumerable<byte[]> ReadFileAsync(string modelId, string name, [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var model = await FindAsync(modelId, cancellationToken);
        var file = model.Files.FirstOrDefault(file => file.Name == name)
            ?? throw PlatformException.NotFound($"Base model '{modelId}' has no file '{name}'.", "name");
        await foreach (var chunk in chunks.ReadAsync(file.Sha256, cancellationToken))
        {
            yield return chunk;
        }
    }

    /// <summary>An admin deletes an imported base when no job or model was made from it; its blobs go with it unless another base shares them.</summary>
    public async Task DeleteAsync(InternalCaller caller, string modelId, CancellationToken cancellationToken)
    {
        RequireAdmin(caller, "delete base models");
        var model = await FindAsync(modelId, cancellationToken);
        // What still needs the base: a job that may yet train on it, and every model or checkpoint tuned from it.
        var jobs = db.Jobs.AsNoTracking().Where(job => job.RootModel == model.Id);
        var unfinished = await jobs.CountAsync(job => job.Status != JobStatus.Succeeded && job.Status != JobStatus.Failed && job.Status != JobStatus.Cancelled, cancellationToken);
        var tuned = await db.Models.AsNoTracking().CountAsync(tunedModel => jobs.Any(job => job.Id == tunedModel.JobId), cancellationToken);
        var checkpoints = await db.Checkpoints.AsNoTracking().CountAsync(checkpoint => jobs.Any(job => job.Id == checkpoint.JobId), cancellationToken);
        if (unfinished + tuned + checkpoints > 0)
        {
            throw PlatformException.FailedPrecondition(
                $"Base model '{model.Id}' is still needed by {unfinished} unfinished job(s), {tuned} fine-tuned model(s) and {checkpoints} checkpoint(s) made from it.",
                "model", "model_in_use");
        }

        db.BaseModels.Remove(model);
        db.AddIntegrationEvent(new ModelAccessChanged(model.Id, ModelCatalog.SystemOwner, "deleted"), time.GetUtcNow());
        await db.SaveChangesAsync(cancellationToken);
        outbox.Wake();
        await DeleteUnusedBlobsAsync([.. model.Files.Select(file => file.Sha256).Distinct()], cancellationToken);

    }

    /// <summary>An imported base with its files (every project may read them: bases are the platform's).</summary>
    public async Task<BaseModel> FindAsync(string modelId, CancellationToken cancellationToken) =>
        await db.BaseModels.AsNoTracking().Include(model => model.Files).FirstOrDefaultAsync(model => model.Id == modelId, cancellationToken)
        ?? throw PlatformException.NotFound($"The model '{modelId}' is not an imported base model.", "model", "model_not_found");

    private async Task CheckNewIdAsync(string modelId, CancellationToken cancellationToken)
    {
        if (!ModelId().IsMatch(modelId))
        {
            throw PlatformException.InvalidArgument(
                "A base model id is 1 to 64 characters: letters, digits, '.', '_' and '-', starting with a letter or digit (e.g. smollm2-135m-instruct).", "id");
        }

        if (ModelPresets.TryGet(modelId, out _) || await db.BaseModels.AnyAsync(model => model.Id == modelId, cancellationToken))
        {
            throw ModelExists(modelId);
        }
    }

    private static PlatformException ModelExists(string modelId) =>
        PlatformException.InvalidArgument($"A base model '{modelId}' exists already; delete it first or import under another id.", "id", "model_exists");

    private sealed record ReceivedFile(string Name, long Bytes, string Sha256);

    /// <summary>Writes each file to the scratch directory as it arrives, hashing it on the way.</summary>
    private static async Task<List<ReceivedFile>> ReceiveAsync(IAsyncStreamReader<BaseModelUpload> upload, string directory, CancellationToken cancellationToken)
    {
        var received = new List<ReceivedFile>();
        FileStream? current = null;
        IncrementalHash? hash = null;
        string? name = null;
        long bytes = 0;

        async Task FinishAsync()
        {
            if (current is not null)
            {
                await current.DisposeAsync();
                received.Add(new ReceivedFile(name!, bytes, Convert.ToHexStringLower(hash!.GetHashAndReset())));
                hash.Dispose();
                current = null;
            }
        }

        try
        {
            while (await upload.MoveNext(cancellationToken))
            {
                var part = upload.Current;
                switch (part.PartCase)
                {
                    case BaseModelUpload.PartOneofCase.File:
                        await FinishAsync();
                        name = part.File.Name;
                        if (!IsImportedFile(name))
                        {
                            throw PlatformException.InvalidArgument(
                                $"'{name}' is not a file of a Hugging Face model directory that the import takes: {string.Join(", ", KnownFiles)} and *.safetensors.", "files");
                        }

                        if (received.Any(file => file.Name == name))
                        {
                            throw PlatformException.InvalidArgument($"'{name}' is sent twice.", "files");
                        }

                        current = new FileStream(Path.Combine(directory, name), FileMode.CreateNew, FileAccess.Write, FileShare.None, 81920, useAsync: true);
                        hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
                        bytes = 0;
                        break;
                    case BaseModelUpload.PartOneofCase.Chunk when current is not null:
                        await current.WriteAsync(part.Chunk.Memory, cancellationToken);
                        hash!.AppendData(part.Chunk.Span);
                        bytes += part.Chunk.Length;
                        break;
                    default:
                        throw PlatformException.InvalidArgument("An import sends its id once, then each file's name followed by its bytes.", "files");
                }
            }

            await FinishAsync();
        }
        finally
        {
            if (current is not null)
            {
                await current.DisposeAsync();
                hash?.Dispose();
            }
        }

        return received;
    }

    /// <summary>Everything the import can check without training: a 400 naming the file and the field or tensor otherwise.</summary>
    private static ModelSummary Inspect(string directory, IReadOnlyList<ReceivedFile> received)
    {
        foreach (var required in new[] { "config.json", "tokenizer.json" })
        {
            if (received.All(file => file.Name != required))
            {
                throw PlatformException.InvalidArgument($"The model directory has no {required}.", required, "unsupported_model");
            }
        }

        if (!received.Any(file => file.Name.EndsWith(".safetensors", StringComparison.Ordinal)))
        {
            throw PlatformException.InvalidArgument(
                "The model directory has no weights: model.safetensors, or the shards model.safetensors.index.json names (PyTorch .bin weights are not read: convert them to safetensors).",
                "model.safetensors", "unsupported_model");
        }

        ModelSummary summary;
        try
        {
            summary = HuggingFaceModel.Inspect(directory);
        }
        catch (UnsupportedModelException ex)
        {
            throw PlatformException.InvalidArgument($"The model cannot be run here: {ex.File}: {ex.Name}: {ex.Reason}", ex.File, "unsupported_model");
        }
        catch (Exception ex) when (ex is JsonException or InvalidDataException or FormatException or EndOfStreamException)
        {
            throw PlatformException.InvalidArgument($"The model directory could not be read: {ex.Message}", "files", "unsupported_model");
        }

        if (!summary.HasChatTemplate)
        {
            throw PlatformException.InvalidArgument(
                "The tokenizer has no chat template (tokenizer_config.json's chat_template or chat_template.jinja): chat fine-tuning and chat completions need one; import the instruct model.",
                "tokenizer_config.json", "unsupported_model");
        }

        return summary;
    }

    /// <summary>
    /// Stores the files' blobs, then the model and its file rows in one transaction that holds every blob's lock and
    /// sees every blob stored: a base deleted meanwhile that shared a blob (its deletion takes the same locks) either
    /// finished first — the blob is stored again — or sees this model's rows and keeps the blob.
    /// </summary>
    private async Task StoreAsync(BaseModel model, IReadOnlyList<ReceivedFile> received, string directory, CancellationToken cancellationToken)
    {
        var hashes = received.Select(file => file.Sha256).Distinct().Order(StringComparer.Ordinal).ToList();
        var missing = received;
        // Each round that finds a blob gone follows the deletion of a base that shared it: bases are finite, so this ends.
        while (true)
        {
            foreach (var file in missing)
            {
                await StoreBlobAsync(Path.Combine(directory, file.Name), file, cancellationToken);
            }

            await using var transaction = await db.Database.BeginTransactionAsync(cancellationToken);
            foreach (var sha256 in hashes)
            {
                await LockBlobAsync(sha256, cancellationToken);
            }

            var stored = await db.Blobs.AsNoTracking().Where(blob => hashes.Contains(blob.Sha256)).Select(blob => blob.Sha256).ToListAsync(cancellationToken);
            missing = [.. received.Where(file => !stored.Contains(file.Sha256))];
            if (missing.Count > 0)
            {
                continue;
            }

            db.BaseModels.Add(model);
            try
            {
                await db.SaveChangesAsync(cancellationToken);
                await transaction.CommitAsync(cancellationToken);
                return;
            }
            catch (DbUpdateException ex) when (ex.InnerException is PostgresException { SqlState: PostgresErrorCodes.UniqueViolation })
            {
                throw ModelExists(model.Id);
            }
        }
    }

    /// <summary>
    /// Deletes the blobs no base names any more: each blob's row and chunks in one transaction under its lock, so an
    /// import naming the blob either committed first (and the blob is kept) or waits and stores it again.
    /// </summary>
    private async Task DeleteUnusedBlobsAsync(IReadOnlyList<string> hashes, CancellationToken cancellationToken)
    {
        foreach (var sha256 in hashes)
        {
            await using var transaction = await db.Database.BeginTransactionAsync(cancellationToken);
            await LockBlobAsync(sha256, cancellationToken);
            if (await db.BaseModelFiles.AsNoTracking().AnyAsync(file => file.Sha256 == sha256, cancellationToken))
            {
                continue;
            }

            await db.Blobs.Where(blob => blob.Sha256 == sha256).ExecuteDeleteAsync(cancellationToken);
            await db.Set<ContentChunk>().Where(chunk => chunk.OwnerId == sha256).ExecuteDeleteAsync(cancellationToken);
            await transaction.CommitAsync(cancellationToken);
        }
    }

    /// <summary>One blob's writers, deleters and the imports naming it take turns (transaction-scoped, on any replica).</summary>
    private Task LockBlobAsync(string sha256, CancellationToken cancellationToken) =>
        db.Database.ExecuteSqlInterpolatedAsync($"SELECT pg_advisory_xact_lock(hashtext({"finetuneplatform:blob:" + sha256}))", cancellationToken);

    /// <summary>
    /// Stores a file's bytes under its hash unless they are stored completely already. Writers of one hash take turns
    /// (a transaction-scoped advisory lock, on any replica): two imports of the same weights at once would otherwise
    /// delete and rewrite each other's chunks.
    /// </summary>
    private async Task StoreBlobAsync(string path, ReceivedFile file, CancellationToken cancellationToken)
    {
        await using var transaction = await db.Database.BeginTransactionAsync(cancellationToken);
        await LockBlobAsync(file.Sha256, cancellationToken);
        if (await db.Blobs.AsNoTracking().AnyAsync(blob => blob.Sha256 == file.Sha256, cancellationToken))
        {
            return;
        }

        // Chunks without a blob row are an interrupted import's: start over.
        await chunks.DeleteAsync(file.Sha256, cancellationToken);
        await using (var content = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 81920, useAsync: true))
        {
            var buffer = new byte[ChunkBytes];
            for (var index = 0; ; index++)
            {
                var read = await content.ReadAtLeastAsync(buffer, buffer.Length, throwOnEndOfStream: false, cancellationToken);
                if (read == 0 && index > 0)
                {
                    break;
                }

                await chunks.WriteAsync(file.Sha256, index, buffer.AsMemory(0, read), cancellationToken);
                if (read < buffer.Length)
                {
                    break;
                }
            }
        }

        db.Blobs.Add(new StoredBlob { Sha256 = file.Sha256, Bytes = file.Bytes });
        await db.SaveChangesAsync(cancellationToken);
        await transaction.CommitAsync(cancellationToken);
    }

    private static string DirectoryHash(IEnumerable<ReceivedFile> files) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(
        string.Join('\n', files.OrderBy(file => file.Name, StringComparer.Ordinal).Select(file => $"{file.Name}\t{file.Sha256}")))));

    private static void RequireAdmin(InternalCaller caller, string what)
    {
        if (caller.Role != Roles.Admin)
        {
            throw PlatformException.PermissionDenied($"Only the platform team (an admin key) can {what}.");
        }
    }

    [LoggerMessage(LogLevel.Information, "Imported base model {ModelId}: {Architecture}, {Parameters} parameters, {Files} files")]
    private static partial void LogImported(ILogger logger, string modelId, string architecture, long parameters, int files);

    [GeneratedRegex("^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
    private static partial Regex ModelId();

    [GeneratedRegex("^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")]
    private static partial Regex SafeFileName();
}
