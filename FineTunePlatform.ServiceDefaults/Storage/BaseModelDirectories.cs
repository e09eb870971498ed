using System.Collections.Concurrent;
using System.Security.Cryptography;
using FineTunePlatform.Contracts.Training;
using Grpc.Core;
using Microsoft.Extensions.Configuration;

namespace FineTunePlatform.ServiceDefaults.Storage;

/// <summary>
/// Imported open-weight base models as local Hugging Face directories, for the code that loads them (trainer
/// workers, the open-weights runtime). The training service stores a base's files by content; here they are
/// downloaded once per machine into `{OpenWeights:CacheDirectory}/{files_sha256}` (default: under the temp directory),
/// each file checked against its SHA-256, the directory whole or not at all (<see cref="CompleteDirectory"/>). The cache is kept within `OpenWeights:CacheBytes` (default 64 GiB): after a
/// download, the directories used least recently go first, never the one just asked for nor one used in the last
/// ten minutes (a process may be loading it; a loaded model holds its weights in memory, not the files).
/// </summary>
public sealed class BaseModelDirectories(TrainingService.TrainingServiceClient training, IConfiguration configuration)
{
    private readonly string _root = configuration["OpenWeights:CacheDirectory"] is { Length: > 0 } configured
        ? configured
        : Path.Combine(Path.GetTempPath(), "finetuneplatform-base-models");

    private readonly long _budgetBytes = configuration.GetValue<long?>("OpenWeights:CacheBytes") ?? (64L << 30);

    private readonly ConcurrentDictionary<string, Lazy<Task<string>>> _downloads = new();

    /// <summary>A directory used less recently than this may be pruned.</summary>
    public static readonly TimeSpan PruneGrace = TimeSpan.FromMinutes(10);

    private const string LastUsedFile = ".last-used";

    /// <summary>The directory of base model `modelId` (an imported base), downloading it first if this machine has not.</summary>
    public async Task<string> GetAsync(string modelId, Metadata headers, CancellationToken cancellationToken)
    {
        var files = await training.GetBaseModelFilesAsync(new GetModelRequest { ModelId = modelId }, headers, cancellationToken: cancellationToken);
        var directory = Path.Combine(_root, files.FilesSha256);
        if (Directory.Exists(directory))
        {
            MarkUsed(directory);
            return directory;
        }

        // One download per directory in this process; a failed one is forgotten so the next caller tries again.
        var download = _downloads.GetOrAdd(files.FilesSha256, _ => new Lazy<Task<string>>(() => DownloadAsync(files, directory, headers)));
        try
        {
            return await download.Value.WaitAsync(cancellationToken);
        }
        catch when (download.Value.IsFaulted)
        {
            _downloads.TryRemove(new KeyValuePair<string, Lazy<Task<string>>>(files.FilesSha256, download));
            throw;
        }
    }

    private async Task<string> DownloadAsync(BaseModelFiles files, string directory, Metadata headers)
    {
        await CompleteDirectory.CreateAsync(directory, async partial =>
        {
            foreach (var file in files.Files)
            {
                await DownloadFileAsync(files.ModelId, file, Path.Combine(partial, file.Name), headers);
            }
        });
        MarkUsed(directory);
        Prune(_root, _budgetBytes, directory, DateTime.UtcNow);
        return directory;
    }

    /// <summary>
    /// Deletes the least recently used complete directories under `root` until the rest fit `budgetBytes`; `keep` and
    /// directories used within <see cref="PruneGrace"/> of `now` stay whatever they weigh.
    /// </summary>
    public static void Prune(string root, long budgetBytes, string keep, DateTime now)
    {
        var cached = Directory.GetDirectories(root)
            .Where(directory => !Path.GetFileName(directory).StartsWith('.'))
            .Select(directory => (Path: directory, Bytes: new DirectoryInfo(directory).EnumerateFiles("*", SearchOption.AllDirectories).Sum(file => file.Length), Used: LastUsed(directory)))
            .OrderBy(entry => entry.Used)
            .ToList();
        var total = cached.Sum(entry => entry.Bytes);
        foreach (var entry in cached)
        {
            if (total <= budgetBytes)
            {
                break;
            }

            if (entry.Path == keep || now - entry.Used < PruneGrace)
            {
                continue;
            }

            try
            {
                Directory.Delete(entry.Path, recursive: true);
                total -= entry.Bytes;
            }
            catch (IOException)
            {
                // Another process pruned it first, or holds it: it is tried again after the next download.
            }
        }
    }

    private static DateTime LastUsed(string directory)
    {
        var marker = Path.Combine(directory, LastUsedFile);
        return File.Exists(marker) ? File.GetLastWriteTimeUtc(marker) : Directory.GetLastWriteTimeUtc(directory);
    }

    private static void MarkUsed(string directory)
    {
        try
        {
            File.WriteAllBytes(Path.Combine(directory, LastUsedFile), []);
        }
        catch (IOException)
        {
            // Pruned or read-only: the directory's own time stands in.
        }
    }

    private async Task DownloadFileAsync(string modelId, BaseModelFile file, string path, Metadata headers)
    {
        using var call = training.ReadBaseModelFile(new ReadBaseModelFileRequest { ModelId = modelId, Name = file.Name }, headers);
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        await using (var output = new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.None, 81920, useAsync: true))
        {
            await foreach (var chunk in call.ResponseStream.ReadAllAsync())
            {
                hash.AppendData(chunk.Data.Span);
                await output.WriteAsync(chunk.Data.Memory);
            }
        }

        var actual = Convert.ToHexStringLower(hash.GetHashAndReset());
        if (actual != file.Sha256)
        {
            throw new InvalidDataException($"Base model '{modelId}' file '{file.Name}' arrived with SHA-256 {actual}, not the stored {file.Sha256}.");
        }
    }
}
