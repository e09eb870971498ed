using System.Text.Json;
using System.Text.Json.Nodes;

namespace FineTunePlatform.OpenWeights;

/// <summary>generation_config.json's fields that matter here (null where absent).</summary>
public sealed record GenerationConfig(IReadOnlyList<int> EosTokenIds, int? BosTokenId, int? PadTokenId, double? Temperature, double? TopP, int? TopK, bool? DoSample, int? MaxNewTokens)
{
    public static readonly GenerationConfig Empty = new([], null, null, null, null, null, null, null);

    public static GenerationConfig Load(string directory)
    {
        var path = Path.Combine(directory, "generation_config.json");
        if (!File.Exists(path))
        {
            return Empty;
        }

        JsonObject json;
        try
        {
            json = JsonNode.Parse(File.ReadAllText(path)) as JsonObject ?? throw new UnsupportedModelException("generation_config.json", "generation_config.json", "is not a JSON object.");
        }
        catch (JsonException exception)
        {
            throw new UnsupportedModelException("generation_config.json", "generation_config.json", $"is not valid JSON ({exception.Message}).");
        }

        T? Value<T>(string name)
            where T : struct
        {
            var node = json[name];
            if (node is null)
            {
                return null;
            }

            return node is JsonValue value && value.TryGetValue<T>(out var result) ? result : throw new UnsupportedModelException("generation_config.json", name, $"must be a {typeof(T).Name.ToLowerInvariant()}.");
        }

        IReadOnlyList<int> eos = json["eos_token_id"] switch
        {
            null => [],
            JsonArray list => list.Select(item => item is JsonValue v && v.TryGetValue<int>(out var id) ? id : throw new UnsupportedModelException("generation_config.json", "eos_token_id", "must be an integer or a list of integers.")).ToList(),
            _ => [Value<int>("eos_token_id")!.Value],
        };
        return new GenerationConfig(eos, Value<int>("bos_token_id"), Value<int>("pad_token_id"), Value<double>("temperature"), Value<double>("top_p"), Value<int>("top_k"), Value<bool>("do_sample"), Value<int>("max_new_tokens"));
    }
}

/// <summary>What an import learns about a model directory without reading its weights.</summary>
public sealed record ModelSummary(ModelConfig Config, long ParameterCount, long WeightBytes, int TokenizerVocabularySize, bool HasChatTemplate, IReadOnlyList<int> StopTokenIds, GenerationConfig Generation);

/// <summary>
/// A Hugging Face model directory as the platform uses it: the base weights, the tokenizer, the chat formatter and
/// the generation defaults. <see cref="Inspect"/> is the import check: everything that could make the model unusable
/// is refused there, naming the file and field or tensor, so nothing fails later at training time.
/// </summary>
public sealed class HuggingFaceModel : IDisposable
{
    private HuggingFaceModel(string directory, LlamaModel model, HfTokenizer tokenizer, ChatFormatter? chat, GenerationConfig generation)
    {
        Directory = directory;
        Model = model;
        Tokenizer = tokenizer;
        Chat = chat;
        Generation = generation;
    }

    public string Directory { get; }

    public LlamaModel Model { get; }

    public HfTokenizer Tokenizer { get; }

    /// <summary>Null for a base model without a chat template (it can still be trained on text, not chat).</summary>
    public ChatFormatter? Chat { get; }

    public GenerationConfig Generation { get; }

    /// <summary>
    /// Checks a directory completely except for the weights' values: config.json, every safetensors header against it,
    /// generation_config.json, tokenizer.json (loaded by the tokenizer library; no id beyond the model's vocabulary),
    /// the chat template (parsed) and an end-of-turn token.
    /// </summary>
    public static ModelSummary Inspect(string directory)
    {
        var config = ModelConfig.Load(directory);
        long parameters = 0, bytes = 0;
        var files = LlamaModel.OpenCheckpoint(directory);
        try
        {
            var tensors = files.SelectMany(file => file.Tensors.Select(tensor => (Path.GetFileName(file.Path), tensor))).ToList();
            config.CheckTensors(tensors);
            foreach (var (_, tensor) in tensors)
            {
                parameters += tensor.ElementCount;
                bytes += tensor.DataEnd - tensor.DataStart;
            }
        }
        finally
        {
            foreach (var file in files)
            {
                file.Dispose();
            }
        }

        var generation = GenerationConfig.Load(directory);
        using var tokenizer = HfTokenizer.Load(directory);
        CheckVocabulary(config, tokenizer);
        var stops = StopTokens(config, generation, tokenizer);
        if (tokenizer.ChatTemplate is not null)
        {
            _ = new ChatFormatter(tokenizer, stopTokenIds: stops);
        }

        return new ModelSummary(config, parameters, bytes, tokenizer.VocabularySize, tokenizer.ChatTemplate is not null, stops, generation);
    }

    public static HuggingFaceModel Load(string directory)
    {
        Inspect(directory);
        var model = LlamaModel.Load(directory);
        var generation = GenerationConfig.Load(directory);
        var tokenizer = HfTokenizer.Load(directory);
        var stops = StopTokens(model.Config, generation, tokenizer);
        var chat = tokenizer.ChatTemplate is null ? null : new ChatFormatter(tokenizer, stopTokenIds: stops);
        return new HuggingFaceModel(directory, model, tokenizer, chat, generation);
    }

    /// <summary>
    /// The chat formatter alone, from config.json, generation_config.json and the tokenizer files (no weights are
    /// read), for counting a file's tokens as the model trains on them. The caller disposes its Tokenizer.
    /// </summary>
    public static ChatFormatter LoadChat(string directory)
    {
        var config = ModelConfig.Load(directory);
        var tokenizer = HfTokenizer.Load(directory);
        try
        {
            return new ChatFormatter(tokenizer, stopTokenIds: StopTokens(config, GenerationConfig.Load(directory), tokenizer));
        }
        catch
        {
            tokenizer.Dispose();
            throw;
        }
    }

    /// <summary>The tokens that end a reply: generation_config's eos_token_id, else config.json's, else the tokenizer's eos_token.</summary>
    public IReadOnlyList<int> StopTokenIds => StopTokens(Model.Config, Generation, Tokenizer);

    public void Dispose() => Tokenizer.Dispose();

    private static IReadOnlyList<int> StopTokens(ModelConfig config, GenerationConfig generation, HfTokenizer tokenizer)
    {
        if (generation.EosTokenIds.Count > 0)
        {
            return generation.EosTokenIds;
        }

        if (config.EosTokenIds.Count > 0)
        {
            return config.EosTokenIds;
        }

        return tokenizer.EosToken is { } eos && tokenizer.TokenId(eos) is { } id ? [id] : [];
    }

    private static void CheckVocabulary(ModelConfig config, HfTokenizer tokenizer)
    {
        if (tokenizer.VocabularySize > config.VocabularySize)
        {
            throw new UnsupportedModelException("tokenizer.json", "model.vocab", $"has token ids up to {tokenizer.VocabularySize - 1}, beyond config.json's vocab_size of {config.VocabularySize}.");
        }
    }
}
