using System.Collections.Concurrent;
using System.IO.Pipelines;
using FineTunePlatform.Contracts.Datasets;
using FineTunePlatform.LocalModels;
using FineTunePlatform.OpenWeights;
using FineTunePlatform.ServiceDefaults.Storage;
using FineTunePlatform.Training.Infrastructure;
using FineTunePlatform.Training.Models;
using Grpc.Core;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Npgsql;

namespace FineTunePlatform.Training.Jobs;

/// <summary>`Training:OpenWeights`: how jobs on imported open-weight bases train.</summary>
public sealed class OpenWeightsTrainingOptions
{
    /// <summary>
    /// The longest sequence a LoRA job trains on (within the model's context): attention's cost grows with its square
    /// on CPU; longer examples are cut at the end, and that is reported before training.
    /// </summary>
    public int MaxTokens { get; set; } = 2048;
}

/// <summary>
/// How a training file fits an open-weight model, counted as the worker will train on it (<see cref="TrainingFit"/>
/// with the model's own tokenizer and chat template at the job's training length): the file report's entry for that
/// model, the job's estimated tokens (= its charge), and the refusal of a file with nothing to learn. Files never
/// change, so a fit is kept per (file, base files, length) and counted once.
/// </summary>
public sealed class TrainingFileFits(
    TrainingDbContext db,
    ModelCatalog catalog,
    ChatFormatters formatters,
    DatasetService.DatasetServiceClient datasets,
    IOptions<OpenWeightsTrainingOptions> options,
    TimeProvider time)
{
    /// <summary>The length jobs on this base train at.</summary>
    public int TrainingLength(BaseModel root) => TrainingFit.LengthFor(root.ContextLength, options.Value.MaxTokens);

    /// <summary>
    /// The file report's entry for an open-weight model the caller may use (`GET /v1/files/{id}/report?model=`): an
    /// unknown file or model is not found; for a built-in model the answer is empty (its entry is the dataset service's).
    /// </summary>
    public async Task<ModelFit> ForReportAsync(InternalCaller caller, string fileId, string modelId, CancellationToken cancellationToken)
    {
        var model = await catalog.GetAsync(caller.ProjectId, modelId, cancellationToken);
        if (model.Backend != ModelBackends.OpenWeights || model.OpenWeightsBase is null)
        {
            // A built-in model's fit is the dataset service's (the report counts every preset as the file arrives).
            return new ModelFit();
        }

        var headers = caller.ToMetadata();
        Contracts.Datasets.DatasetFile file;
        try
        {
            file = await datasets.GetAsync(new GetFileRequest { FileId = fileId }, headers, cancellationToken: cancellationToken);
        }
        catch (RpcException ex) when (ex.StatusCode == StatusCode.NotFound)
        {
            throw PlatformException.NotFound($"No such File object: {fileId}", "file_id");
        }

        if (file.Status != "processed" || file.Format is not ("chat" or "preference"))
        {
            throw PlatformException.InvalidArgument(
                $"File '{fileId}' is not a usable fine-tuning file (status {file.Status}, format '{file.Format}'): see its report without 'model'.", "file_id");
        }

        return await GetAsync(file, model, headers, cancellationToken);
    }

    /// <summary>The fit of a file the caller's project may read (its format checked by the caller) on an open-weight model.</summary>
    public async Task<ModelFit> GetAsync(Contracts.Datasets.DatasetFile file, VisibleModel model, Metadata caller, CancellationToken cancellationToken)
    {
        var root = model.OpenWeightsBase ?? throw new InvalidOperationException($"{model.Id} is not an open-weight model.");
        var length = TrainingLength(root);
        var kept = await db.FileFits.AsNoTracking().FirstOrDefaultAsync(
            fit => fit.FileId == file.Id && fit.BaseFilesSha256 == root.FilesSha256 && fit.TrainingLength == length, cancellationToken);
        if (kept is null)
        {
            kept = await CountAsync(file, root, length, caller, cancellationToken);
            db.FileFits.Add(kept);
            try
            {
                await db.SaveChangesAsync(cancellationToken);
            }
            catch (DbUpdateException ex) when (ex.InnerException is PostgresException { SqlState: PostgresErrorCodes.UniqueViolation })
            {
                // Counted at the same time elsewhere: the same file and tokenizer give the same numbers. Only this row
                // is forgotten; the caller's own changes stay tracked.
                db.Entry(kept).State = EntityState.Detached;
            }
        }

        var contract = new ModelFit
        {
            Model = root.Id,
            Tokenizer = $"{root.Id} (tokenizer.json)",
            ContextTokens = length,
            ExamplesTruncated = kept.ExamplesTruncated,
            ExamplesWithoutLearnedTokens = kept.ExamplesWithoutLearnedTokens,
            TokensPerEpoch = kept.TokensPerEpoch,
            Message = kept.Message,
        };
        contract.LinesWithoutLearnedTokens.AddRange(kept.LinesWithoutLearnedTokens);
        return contract;
    }

    private async Task<TrainingFileFit> CountAsync(Contracts.Datasets.DatasetFile file, BaseModel root, int length, Metadata caller, CancellationToken cancellationToken)
    {
        var chat = await formatters.GetAsync(root, cancellationToken);
        var fit = new TrainingFit(length);
        using var call = datasets.ReadContent(new ReadContentRequest { FileId = file.Id }, caller, cancellationToken: cancellationToken);
        var pipe = new Pipe();
        var copy = CopyAsync(call.ResponseStream, pipe.Writer, cancellationToken);
        await using (var content = pipe.Reader.AsStream())
        {
            try
            {
                if (file.Format == "preference")
                {
                    await foreach (var (line, example) in ChatExampleReader.ReadPreferencesAsync(content, cancellationToken))
                    {
                        var pair = Encode(chat, line, () => OpenWeightsExamples.Encode(chat, example));
                        fit.Add(line, pair.Chosen, pair.Rejected);
                    }
                }
                else
                {
                    await foreach (var (line, example) in ChatExampleReader.ReadChatAsync(content, cancellationToken))
                    {
                        fit.Add(line, Encode(chat, line, () => OpenWeightsExamples.Encode(chat, example.Messages)));
                    }
                }
            }
            catch (InvalidExampleException ex)
            {
                throw PlatformException.InvalidArgument($"File '{file.Id}': {ex.Message}", "training_file", "invalid_training_file");
            }
        }

        await copy;
        return new TrainingFileFit
        {
            FileId = file.Id,
            BaseFilesSha256 = root.FilesSha256,
            TrainingLength = length,
            Examples = fit.Examples,
            ExamplesTruncated = fit.ExamplesTruncated,
            ExamplesWithoutLearnedTokens = fit.ExamplesWithoutLearnedTokens,
            LinesWithoutLearnedTokens = [.. fit.LinesWithoutLearnedTokens],
            TokensPerEpoch = fit.TokensPerEpoch,
            Message = fit.Describe(root.Id),
            CreatedAt = time.GetUtcNow(),
        };
    }

    private static T Encode<T>(ChatFormatter chat, long line, Func<T> encode)
    {
        try
        {
            // The tokenizer is shared by every request on this base.
            lock (chat)
            {
                return encode();
            }
        }
        catch (ArgumentException ex)
        {
            throw PlatformException.InvalidArgument($"Line {line} cannot be formatted with the model's chat template: {ex.Message}", "training_file", "invalid_training_file");
        }
    }

    private static async Task CopyAsync(IAsyncStreamReader<Contracts.Datasets.ContentChunk> chunks, PipeWriter writer, CancellationToken cancellationToken)
    {
        try
        {
            await foreach (var chunk in chunks.ReadAllAsync(cancellationToken))
            {
                await writer.WriteAsync(chunk.Data.Memory, cancellationToken);
            }

            await writer.CompleteAsync();
        }
        catch (Exception ex)
        {
            await writer.CompleteAsync(ex);
        }
    }
}

/// <summary>A file's fit on a base at a training length, as counted once (<see cref="TrainingFileFits"/>).</summary>
public sealed class TrainingFileFit
{
    public required string FileId { get; init; }

    /// <summary>The base's files (its tokenizer and template among them): a base re-imported under the same id counts anew.</summary>
    public required string BaseFilesSha256 { get; init; }

    public int TrainingLength { get; init; }

    public long Examples { get; init; }

    public long ExamplesTruncated { get; init; }

    public long ExamplesWithoutLearnedTokens { get; init; }

    public long[] LinesWithoutLearnedTokens { get; init; } = [];

    public long TokensPerEpoch { get; init; }

    public required string Message { get; init; }

    public DateTimeOffset CreatedAt { get; init; }
}

/// <summary>
/// Imported bases' chat formatters (tokenizer and template, never the weights), loaded once per base from its
/// stored files into a local directory by the files' hash.
/// </summary>
public sealed class ChatFormatters(IServiceScopeFactory scopes) : IDisposable
{
    private readonly string _root = Path.Combine(Path.GetTempPath(), "finetuneplatform-tokenizers");
    private readonly ConcurrentDictionary<string, Lazy<Task<ChatFormatter>>> _loaded = new();

    public async Task<ChatFormatter> GetAsync(BaseModel root, CancellationToken cancellationToken)
    {
        var load = _loaded.GetOrAdd(root.FilesSha256, _ => new Lazy<Task<ChatFormatter>>(() => LoadAsync(root)));
        try
        {
            return await load.Value.WaitAsync(cancellationToken);
        }
        catch when (load.Value.IsFaulted)
        {
            _loaded.TryRemove(new KeyValuePair<string, Lazy<Task<ChatFormatter>>>(root.FilesSha256, load));
            throw;
        }
    }

    private async Task<ChatFormatter> LoadAsync(BaseModel root)
    {
        var directory = Path.Combine(_root, root.FilesSha256);
        if (!Directory.Exists(directory))
        {
            await using var scope = scopes.CreateAsyncScope();
            var db = scope.ServiceProvider.GetRequiredService<TrainingDbContext>();
            var chunks = scope.ServiceProvider.GetRequiredService<ChunkStore>();
            var files = await db.BaseModelFiles.AsNoTracking().Where(file => file.ModelId == root.Id).ToListAsync();
            await CompleteDirectory.CreateAsync(directory, async partial =>
            {
                // Everything but the weights: config, generation defaults, tokenizer files, template.
                foreach (var file in files.Where(file => !file.Name.EndsWith(".safetensors", StringComparison.Ordinal) && !file.Name.EndsWith(".index.json", StringComparison.Ordinal)))
                {
                    await using var output = File.Create(Path.Combine(partial, file.Name));
                    await foreach (var chunk in chunks.ReadAsync(file.Sha256, CancellationToken.None))
                    {
                        await output.WriteAsync(chunk);
                    }
                }
            });
        }

        return HuggingFaceModel.LoadChat(directory);
    }

    public void Dispose()
    {
        foreach (var load in _loaded.Values.Where(load => load.IsValueCreated && load.Value.IsCompletedSuccessfully))
        {
            load.Value.Result.Tokenizer.Dispose();
        }
    }
}
