using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace FineTunePlatform.OpenWeights;

/// <summary>
/// A model directory we cannot run: <see cref="File"/> is the file at fault (config.json, a safetensors shard,
/// tokenizer.json, ...) and <see cref="Name"/> the field (a JSON path such as <c>rope_scaling.rope_type</c>) or tensor
/// (<c>model.layers.3.mlp.up_proj.weight</c>) it is about, so an import API can answer 400 naming it.
/// </summary>
public sealed class UnsupportedModelException(string file, string name, string message) : Exception($"{file}: {name}: {message}")
{
    public string File { get; } = file;

    public string Name { get; } = name;

    public string Reason { get; } = message;
}

/// <summary>How RoPE's frequencies are scaled: none, linear (positions divided by a factor) or Llama 3's by wavelength.</summary>
public enum RopeScalingKind
{
    None,
    Linear,
    Llama3,
}

/// <summary>rope_scaling of config.json; the Llama 3 fields are set only for <see cref="RopeScalingKind.Llama3"/>.</summary>
public sealed record RopeScaling(RopeScalingKind Kind, double Factor, double LowFrequencyFactor = 0, double HighFrequencyFactor = 0, int OriginalMaxPositionEmbeddings = 0)
{
    public static readonly RopeScaling None = new(RopeScalingKind.None, 1);
}

/// <summary>
/// The architecture of a Llama-family checkpoint, from the config.json of LlamaForCausalLM, Qwen2ForCausalLM or
/// MistralForCausalLM, with Hugging Face's defaults where a field is absent. Everything the model, the exporter and
/// the importer need; <see cref="Json"/> keeps the original so a merged export writes it back unchanged.
/// </summary>
public sealed record ModelConfig
{
    public required string Architecture { get; init; }

    public required string ModelType { get; init; }

    public required int HiddenSize { get; init; }

    public required int Layers { get; init; }

    public required int Heads { get; init; }

    public required int KeyValueHeads { get; init; }

    public required int HeadDim { get; init; }

    public required int IntermediateSize { get; init; }

    public required int VocabularySize { get; init; }

    public required int MaxPositionEmbeddings { get; init; }

    public required double RmsNormEpsilon { get; init; }

    public required double RopeTheta { get; init; }

    public required RopeScaling RopeScaling { get; init; }

    public required bool TieWordEmbeddings { get; init; }

    /// <summary>Biases on q, k and v (Qwen2 always; Llama with attention_bias).</summary>
    public required bool QkvBias { get; init; }

    /// <summary>A bias on o_proj (Llama with attention_bias).</summary>
    public required bool OutputBias { get; init; }

    /// <summary>Biases on gate, up and down (Llama with mlp_bias).</summary>
    public required bool MlpBias { get; init; }

    /// <summary>Mistral's sliding attention window in tokens, or null for full causal attention.</summary>
    public int? SlidingWindow { get; init; }

    public int? BosTokenId { get; init; }

    public IReadOnlyList<int> EosTokenIds { get; init; } = [];

    public int? PadTokenId { get; init; }

    /// <summary>The config.json as read, written back by a merged export.</summary>
    public string Json { get; init; } = "{}";

    public int QueryDim => Heads * HeadDim;

    public int KeyValueDim => KeyValueHeads * HeadDim;

    public static readonly IReadOnlyList<string> SupportedArchitectures = ["LlamaForCausalLM", "Qwen2ForCausalLM", "MistralForCausalLM"];

    public static ModelConfig Load(string directory)
    {
        var path = System.IO.Path.Combine(directory, "config.json");
        if (!File.Exists(path))
        {
            throw new UnsupportedModelException("config.json", "config.json", "the model directory has no config.json.");
        }

        return Parse(File.ReadAllText(path));
    }

    /// <summary>
    /// Parses config.json and checks that we can run it: a pure function, every refusal an
    /// <see cref="UnsupportedModelException"/> naming the field.
    /// </summary>
    public static ModelConfig Parse(string json)
    {
        JsonObject root;
        try
        {
            root = JsonNode.Parse(json) as JsonObject ?? throw new UnsupportedModelException("config.json", "config.json", "is not a JSON object.");
        }
        catch (JsonException exception)
        {
            throw new UnsupportedModelException("config.json", "config.json", $"is not valid JSON ({exception.Message}).");
        }

        var architectures = root["architectures"] as JsonArray;
        if (architectures is not { Count: 1 } || architectures[0] is not JsonValue first || !first.TryGetValue<string>(out var architecture))
        {
            throw Field("architectures", $"must list exactly one architecture; supported: {string.Join(", ", SupportedArchitectures)}.");
        }

        if (!SupportedArchitectures.Contains(architecture))
        {
            throw Field("architectures", $"{architecture} is not supported; supported: {string.Join(", ", SupportedArchitectures)}.");
        }

        var isQwen2 = architecture == "Qwen2ForCausalLM";
        var isLlama = architecture == "LlamaForCausalLM";
        var modelType = OptionalString(root, "model_type") ?? architecture switch
        {
            "Qwen2ForCausalLM" => "qwen2",
            "MistralForCausalLM" => "mistral",
            _ => "llama",
        };

        var hidden = RequiredPositive(root, "hidden_size");
        var layers = RequiredPositive(root, "num_hidden_layers");
        var heads = RequiredPositive(root, "num_attention_heads");
        var kvHeads = OptionalPositive(root, "num_key_value_heads") ?? heads;
        if (heads % kvHeads != 0)
        {
            throw Field("num_key_value_heads", $"{kvHeads} does not divide num_attention_heads ({heads}).");
        }

        var headDim = OptionalPositive(root, "head_dim");
        if (headDim is null)
        {
            if (hidden % heads != 0)
            {
                throw Field("num_attention_heads", $"{heads} does not divide hidden_size ({hidden}) and there is no head_dim.");
            }

            headDim = hidden / heads;
        }

        if (headDim.Value % 2 != 0)
        {
            throw Field("head_dim", $"{headDim} is odd; rotary embeddings rotate pairs of dimensions.");
        }

        var activation = OptionalString(root, "hidden_act") ?? "silu";
        if (activation != "silu")
        {
            throw Field("hidden_act", $"{activation} is not supported; these architectures use silu (SwiGLU).");
        }

        var attentionDropout = OptionalNumber(root, "attention_dropout") ?? 0;
        if (attentionDropout != 0)
        {
            throw Field("attention_dropout", $"{attentionDropout.ToString(CultureInfo.InvariantCulture)} is not supported (0 only).");
        }

        var epsilon = OptionalNumber(root, "rms_norm_eps") ?? 1e-6;
        if (epsilon is <= 0 or > 1)
        {
            throw Field("rms_norm_eps", "must be a small positive number.");
        }

        var theta = OptionalNumber(root, "rope_theta") ?? 10000;
        if (theta <= 0)
        {
            throw Field("rope_theta", "must be positive.");
        }

        int? slidingWindow = null;
        if (architecture == "MistralForCausalLM" && root["sliding_window"] is JsonValue)
        {
            slidingWindow = RequiredPositive(root, "sliding_window");
        }

        if (isQwen2 && (root["use_sliding_window"] as JsonValue)?.TryGetValue<bool>(out var useSliding) == true && useSliding)
        {
            throw Field("use_sliding_window", "Qwen2's per-layer sliding window is not supported.");
        }

        var attentionBias = OptionalBool(root, "attention_bias") ?? false;
        var mlpBias = OptionalBool(root, "mlp_bias") ?? false;
        if (!isLlama && (attentionBias || mlpBias))
        {
            throw Field(attentionBias ? "attention_bias" : "mlp_bias", $"is not a {architecture} option.");
        }

        return new ModelConfig
        {
            Architecture = architecture,
            ModelType = modelType,
            HiddenSize = hidden,
            Layers = layers,
            Heads = heads,
            KeyValueHeads = kvHeads,
            HeadDim = headDim.Value,
            IntermediateSize = RequiredPositive(root, "intermediate_size"),
            VocabularySize = RequiredPositive(root, "vocab_size"),
            MaxPositionEmbeddings = OptionalPositive(root, "max_position_embeddings") ?? 2048,
            RmsNormEpsilon = epsilon,
            RopeTheta = theta,
            RopeScaling = ParseRopeScaling(root["rope_scaling"]),
            // Each of the three configs defaults to untied (PretrainedConfig's own default, true, is overridden by them).
            TieWordEmbeddings = OptionalBool(root, "tie_word_embeddings") ?? false,
            QkvBias = isQwen2 || attentionBias,
            OutputBias = attentionBias,
            MlpBias = mlpBias,
            SlidingWindow = slidingWindow,
            BosTokenId = OptionalInt(root, "bos_token_id"),
            EosTokenIds = TokenIds(root, "eos_token_id"),
            PadTokenId = OptionalInt(root, "pad_token_id"),
            Json = json,
        };
    }

    private static RopeScaling ParseRopeScaling(JsonNode? node)
    {
        if (node is null)
        {
            return RopeScaling.None;
        }

        if (node is not JsonObject scaling)
        {
            throw Field("rope_scaling", "must be null or an object.");
        }

        // transformers reads "rope_type" and falls back to the older "type".
        var typeField = scaling.ContainsKey("rope_type") ? "rope_type" : "type";
        var type = (scaling[typeField] as JsonValue)?.TryGetValue<string>(out var text) == true ? text : null;
        switch (type)
        {
            case null or "default":
                return RopeScaling.None;
            case "linear":
                return new RopeScaling(RopeScalingKind.Linear, PositiveIn(scaling, "factor"));
            case "llama3":
                var low = PositiveIn(scaling, "low_freq_factor");
                var high = PositiveIn(scaling, "high_freq_factor");
                if (high <= low)
                {
                    throw Field("rope_scaling.high_freq_factor", "must exceed low_freq_factor.");
                }

                return new RopeScaling(RopeScalingKind.Llama3, PositiveIn(scaling, "factor"), low, high, (int)PositiveIn(scaling, "original_max_position_embeddings"));
            default:
                throw Field($"rope_scaling.{typeField}", $"{type} is not supported; supported: default, linear, llama3.");
        }
    }

    private static double PositiveIn(JsonObject scaling, string name)
    {
        if ((scaling[name] as JsonValue)?.TryGetValue<double>(out var value) != true || value <= 0)
        {
            throw Field($"rope_scaling.{name}", "must be a positive number.");
        }

        return value;
    }

    private static UnsupportedModelException Field(string name, string message) => new("config.json", name, message);

    private static int RequiredPositive(JsonObject root, string name) =>
        OptionalPositive(root, name) ?? throw Field(name, "is required.");

    private static int? OptionalPositive(JsonObject root, string name)
    {
        var value = OptionalInt(root, name);
        if (value is <= 0)
        {
            throw Field(name, "must be a positive integer.");
        }

        return value;
    }

    private static int? OptionalInt(JsonObject root, string name)
    {
        var node = root[name];
        if (node is null)
        {
            return null;
        }

        if (node is JsonValue value && value.GetValueKind() == JsonValueKind.Number && value.TryGetValue<int>(out var number))
        {
            return number;
        }

        throw Field(name, "must be an integer.");
    }

    private static double? OptionalNumber(JsonObject root, string name)
    {
        var node = root[name];
        if (node is null)
        {
            return null;
        }

        return node is JsonValue value && value.GetValueKind() == JsonValueKind.Number ? value.GetValue<double>() : throw Field(name, "must be a number.");
    }

    private static bool? OptionalBool(JsonObject root, string name)
    {
        var node = root[name];
        if (node is null)
        {
            return null;
        }

        return node is JsonValue value && value.TryGetValue<bool>(out var flag) ? flag : throw Field(name, "must be true or false.");
    }

    private static string? OptionalString(JsonObject root, string name) =>
        root[name] is JsonValue value && value.TryGetValue<string>(out var text) ? text : null;

    private static IReadOnlyList<int> TokenIds(JsonObject root, string name) => root[name] switch
    {
        null => [],
        JsonArray array => array.Select(item => item is JsonValue v && v.TryGetValue<int>(out var id) ? id : throw Field(name, "must be an integer or a list of integers.")).ToList(),
        _ => [OptionalInt(root, name)!.Value],
    };

    /// <summary>
    /// The tensors a checkpoint of this config must hold, with their shapes ([out, in] for linear layers, as PyTorch
    /// stores them). lm_head.weight only when the embeddings are untied.
    /// </summary>
    public IReadOnlyList<(string Name, long[] Shape)> ExpectedTensors()
    {
        var list = new List<(string, long[])> { ("model.embed_tokens.weight", [VocabularySize, HiddenSize]) };
        for (var l = 0; l < Layers; l++)
        {
            var prefix = $"model.layers.{l}.";
            list.Add((prefix + "input_layernorm.weight", [HiddenSize]));
            list.Add((prefix + "post_attention_layernorm.weight", [HiddenSize]));
            foreach (var (module, outFeatures, inFeatures, bias) in LinearModules())
            {
                list.Add((prefix + module + ".weight", [outFeatures, inFeatures]));
                if (bias)
                {
                    list.Add((prefix + module + ".bias", [outFeatures]));
                }
            }
        }

        list.Add(("model.norm.weight", [HiddenSize]));
        if (!TieWordEmbeddings)
        {
            list.Add(("lm_head.weight", [VocabularySize, HiddenSize]));
        }

        return list;
    }

    /// <summary>Each layer's linear modules by their Hugging Face path, with (out, in) features and whether a bias is stored.</summary>
    public IReadOnlyList<(string Module, int Out, int In, bool Bias)> LinearModules() =>
    [
        ("self_attn.q_proj", QueryDim, HiddenSize, QkvBias),
        ("self_attn.k_proj", KeyValueDim, HiddenSize, QkvBias),
        ("self_attn.v_proj", KeyValueDim, HiddenSize, QkvBias),
        ("self_attn.o_proj", HiddenSize, QueryDim, OutputBias),
        ("mlp.gate_proj", IntermediateSize, HiddenSize, MlpBias),
        ("mlp.up_proj", IntermediateSize, HiddenSize, MlpBias),
        ("mlp.down_proj", HiddenSize, IntermediateSize, MlpBias),
    ];

    /// <summary>
    /// Checks a checkpoint's tensors against this config: every expected tensor present once with its shape and a
    /// float dtype, nothing unexpected (a stray layer means config and weights disagree). Old checkpoints'
    /// rotary_emb.inv_freq buffers are ignored (they are recomputed from the config), as is lm_head.weight when tied.
    /// </summary>
    public void CheckTensors(IEnumerable<(string File, TensorInfo Tensor)> tensors)
    {
        var expected = ExpectedTensors().ToDictionary(entry => entry.Name, entry => entry.Shape, StringComparer.Ordinal);
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (file, tensor) in tensors)
        {
            if (tensor.Name.EndsWith(".rotary_emb.inv_freq", StringComparison.Ordinal) || (TieWordEmbeddings && tensor.Name == "lm_head.weight"))
            {
                continue;
            }

            if (!expected.TryGetValue(tensor.Name, out var shape))
            {
                throw new UnsupportedModelException(file, tensor.Name, $"is not a tensor of this {Architecture} config ({Layers} layers{(TieWordEmbeddings ? ", tied embeddings" : "")}).");
            }

            if (!seen.Add(tensor.Name))
            {
                throw new UnsupportedModelException(file, tensor.Name, "appears in more than one shard.");
            }

            if (tensor.DType is not (TensorDType.F32 or TensorDType.F16 or TensorDType.BF16))
            {
                throw new UnsupportedModelException(file, tensor.Name, $"has dtype {tensor.DType}; weights must be F32, F16 or BF16.");
            }

            if (!tensor.Shape.SequenceEqual(shape))
            {
                throw new UnsupportedModelException(file, tensor.Name, $"has shape {tensor.ShapeText} but the config needs [{string.Join(", ", shape)}].");
            }
        }

        var missing = expected.Keys.FirstOrDefault(name => !seen.Contains(name));
        if (missing is not null)
        {
            throw new UnsupportedModelException("model.safetensors", missing, "is missing from the checkpoint.");
        }
    }
}
