using FineTunePlatform.Contracts.Training;
using FineTunePlatform.LocalModels;
using FineTunePlatform.OpenWeights;
using FineTunePlatform.ServiceDefaults.Storage;
using Grpc.Core;
using Microsoft.Extensions.Options;
using ChatMessage = FineTunePlatform.OpenWeights.ChatMessage;

namespace FineTunePlatform.Gateway.Routing;

/// <summary>`Gateway:OpenWeights`: how many imported bases and adapters stay loaded, batching, the import size limit.</summary>
public sealed class OpenWeightsOptions
{
    /// <summary>Bases kept loaded in memory (float32: 4 bytes per parameter each), least recently used evicted.</summary>
    public int MaxLoadedBases { get; set; } = 2;

    /// <summary>Adapters kept loaded (megabytes each), by their artifact's SHA-256.</summary>
    public int MaxCachedAdapters { get; set; } = 32;

    /// <summary>Replies decoded together per base at most; the rest wait their turn.</summary>
    public int MaxBatch { get; set; } = 8;

    /// <summary>The largest import POST /admin/v1/models accepts, every file together.</summary>
    public long MaxImportBytes { get; set; } = 64L << 30;
}

/// <summary>
/// Serves imported open-weight bases and the models tuned from them. Whether the caller may use a model is asked of
/// the training service on every request (GetModel with the caller's metadata, as the built-in runtime does); the
/// weights are cached by content: the base's directory on disk by its files' hash (<see cref="BaseModelDirectories"/>,
/// shared with the trainer workers: `OpenWeights:CacheDirectory`), the loaded base in memory (LRU,
/// `Gateway:OpenWeights:MaxLoadedBases`), and each adapter by its artifact's SHA-256 (many adapters share one loaded
/// base). Each loaded base decodes on its own thread, batching concurrent replies (<see cref="OpenWeightsBatcher"/>).
/// </summary>
public sealed class OpenWeightsRuntime(IServiceProvider services, BaseModelDirectories directories, IOptions<OpenWeightsOptions> options)
{
    private readonly ContentCache<LoadedBaseModel> _bases = new(Math.Max(1, options.Value.MaxLoadedBases));
    private readonly ContentCache<LoraAdapter> _adapters = new(Math.Max(1, options.Value.MaxCachedAdapters));

    private TrainingService.TrainingServiceClient Training => services.GetRequiredService<TrainingService.TrainingServiceClient>();

    /// <summary>The registry's entry for the model as `headers`' caller sees it, or null when it is not visible.</summary>
    public Task<Model?> FindAsync(string model, Metadata headers, CancellationToken cancellationToken) =>
        Training.FindVisibleAsync(model, headers, cancellationToken);

    public async Task<bool> IsVisibleAsync(string model, InternalCaller caller, CancellationToken cancellationToken) =>
        await FindAsync(model, caller.ToMetadata(), cancellationToken) is { Backend: ModelBackends.OpenWeights };

    /// <summary>The model ready to chat, or null when it is not an open-weight model the caller can see.</summary>
    public async Task<IChatModel?> ResolveAsync(string model, InternalCaller caller, bool forEvaluation, CancellationToken cancellationToken)
    {
        var headers = caller.ToMetadata();
        if (await FindAsync(model, headers, cancellationToken) is not { Backend: ModelBackends.OpenWeights } found)
        {
            return null;
        }

        ChatModels.EnsurePublished(found, forEvaluation);
        var loaded = await LoadBaseAsync(found, headers, cancellationToken);
        var adapter = await LoadAdapterAsync(found, loaded.Model.Model.Config, headers, cancellationToken);
        return new OpenWeightsChatModel(found.Id, loaded, adapter);
    }

    /// <summary>The base at the root of the model's lineage, loaded (downloading its directory first if needed).</summary>
    internal Task<LoadedBaseModel> LoadBaseAsync(Model found, Metadata headers, CancellationToken cancellationToken)
    {
        var filesSha256 = FilesHash(found);
        return _bases.GetAsync(filesSha256, async () =>
        {
            var directory = await directories.GetAsync(found.RootModel, headers, CancellationToken.None);
            // Loading converts every weight to float32: seconds of CPU, off the request's thread.
            var model = await Task.Run(() => HuggingFaceModel.Load(directory));
            return new LoadedBaseModel(found.RootModel, directory, model, new OpenWeightsBatcher(model, options.Value.MaxBatch, found.RootModel));
        }, cancellationToken);
    }

    /// <summary>The adapter of a fine-tuned model or checkpoint (its training checkpoint's tensors); null for a base.</summary>
    internal async Task<LoraAdapter?> LoadAdapterAsync(Model found, ModelConfig baseConfig, Metadata headers, CancellationToken cancellationToken)
    {
        if (IsBase(found))
        {
            return null;
        }

        var key = found.ArtifactSha256 is { Length: > 0 } sha ? sha : found.Id;
        return await _adapters.GetAsync(key, async () => (await AdapterCheckpoint.LoadAsync(async (file, token) =>
        {
            using var call = Training.ReadModelArtifact(new ReadModelArtifactRequest { ModelId = found.Id }, headers, cancellationToken: token);
            await foreach (var chunk in call.ResponseStream.ReadAllAsync(token))
            {
                await file.WriteAsync(chunk.Data.Memory, token);
            }
        }, baseConfig, CancellationToken.None)).Adapter, cancellationToken);
    }

    /// <summary>The base's config.json alone: what an adapter export needs, without downloading the weights.</summary>
    internal async Task<ModelConfig> ReadBaseConfigAsync(Model found, Metadata headers, CancellationToken cancellationToken)
    {
        using var call = Training.ReadBaseModelFile(new ReadBaseModelFileRequest { ModelId = found.RootModel, Name = "config.json" }, headers, cancellationToken: cancellationToken);
        using var json = new MemoryStream();
        await foreach (var chunk in call.ResponseStream.ReadAllAsync(cancellationToken))
        {
            json.Write(chunk.Data.Span);
        }

        return ModelConfig.Parse(System.Text.Encoding.UTF8.GetString(json.ToArray()));
    }

    public static bool IsBase(Model found) => found.Kind == ModelKinds.Base || found.Id == found.RootModel;

    /// <summary>The cache key of the base's directory: one hash over its files, given by the registry.</summary>
    private static string FilesHash(Model found) =>
        found.OpenWeights?.FilesSha256 is { Length: > 0 } hash ? hash : throw new InvalidOperationException($"The registry describes `{found.Id}` without its base's files hash.");

    /// <summary>An open-weight model ready to chat: the shared loaded base and this model's adapter (null: the base).</summary>
    private sealed class OpenWeightsChatModel(string id, LoadedBaseModel loaded, LoraAdapter? adapter) : IChatModel
    {
        public IAsyncEnumerable<(string Delta, GenerationResult? Result)> Start(IReadOnlyList<ChatTurn> messages, SamplingOptions options,
            IReadOnlyList<string>? stop, CancellationToken cancellationToken)
        {
            var model = loaded.Model;
            var chat = model.Chat ?? throw PlatformException.InvalidArgument(
                $"The model `{id}` has no chat template (tokenizer_config.json's chat_template or chat_template.jinja), so it cannot answer chat completions.", "model", "unsupported_model");
            int[] prompt;
            try
            {
                // OpenAI's developer role is the system prompt of models that predate it.
                var conversation = messages.Select(turn => new ChatMessage(turn.Role == "developer" ? "system" : turn.Role, turn.Content)).ToList();
                // One tokenizer call at a time per model: the decoding thread shares it (see OpenWeightsReply).
                lock (model.Tokenizer)
                {
                    prompt = chat.EncodePrompt(conversation);
                }
            }
            catch (ArgumentException ex)
            {
                throw PlatformException.InvalidArgument(ex.Message, "messages");
            }

            var context = model.Model.Config.MaxPositionEmbeddings;
            if (prompt.Length >= context)
            {
                throw PlatformException.InvalidArgument(
                    $"This model's maximum context length is {context} tokens. However, your messages resulted in {prompt.Length} tokens.", "messages", "context_length_exceeded");
            }

            var reply = new OpenWeightsReply(model, adapter, prompt, options, stop, cancellationToken);
            loaded.Batcher.Enqueue(reply);
            return reply.Output.Reader.ReadAllAsync(cancellationToken);
        }
    }
}

/// <summary>An imported base loaded in memory, its directory in the disk cache, and the thread that decodes on it.</summary>
internal sealed record LoadedBaseModel(string Id, string Directory, HuggingFaceModel Model, OpenWeightsBatcher Batcher);
