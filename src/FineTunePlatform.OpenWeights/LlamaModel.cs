using System.Text.Json;
using System.Text.Json.Nodes;

namespace FineTunePlatform.OpenWeights;

/// <summary>The seven linear modules of a layer that LoRA can adapt, in PEFT's short names.</summary>
public enum LinearModule
{
    Q,
    K,
    V,
    O,
    Gate,
    Up,
    Down,
}

public static class LinearModules
{
    public static readonly IReadOnlyList<LinearModule> All = Enum.GetValues<LinearModule>();

    /// <summary>The module's name in PEFT's target_modules (q_proj, ...).</summary>
    public static string PeftName(this LinearModule module) => module switch
    {
        LinearModule.Q => "q_proj",
        LinearModule.K => "k_proj",
        LinearModule.V => "v_proj",
        LinearModule.O => "o_proj",
        LinearModule.Gate => "gate_proj",
        LinearModule.Up => "up_proj",
        _ => "down_proj",
    };

    /// <summary>The module's path inside a layer (self_attn.q_proj, mlp.gate_proj, ...).</summary>
    public static string HfPath(this LinearModule module) => (module <= LinearModule.O ? "self_attn." : "mlp.") + module.PeftName();

    /// <summary>Parses "q", "q_proj" or "self_attn.q_proj".</summary>
    public static LinearModule Parse(string name)
    {
        var shortName = name[(name.LastIndexOf('.') + 1)..];
        foreach (var module in All)
        {
            if (shortName == module.PeftName() || shortName + "_proj" == module.PeftName())
            {
                return module;
            }
        }

        throw new ArgumentException($"'{name}' is not a LoRA target; use q, k, v, o, gate, up or down.", nameof(name));
    }

    public static (int Out, int In) Shape(this LinearModule module, ModelConfig config) => module switch
    {
        LinearModule.Q => (config.QueryDim, config.HiddenSize),
        LinearModule.K or LinearModule.V => (config.KeyValueDim, config.HiddenSize),
        LinearModule.O => (config.HiddenSize, config.QueryDim),
        LinearModule.Gate or LinearModule.Up => (config.IntermediateSize, config.HiddenSize),
        _ => (config.HiddenSize, config.IntermediateSize),
    };
}

/// <summary>A frozen linear layer: weight [out, in] row-major as PyTorch stores it, and an optional bias.</summary>
public sealed class Linear(float[] weight, float[]? bias, int outFeatures, int inFeatures)
{
    public float[] Weight { get; } = weight;

    public float[]? Bias { get; } = bias;

    public int Out { get; } = outFeatures;

    public int In { get; } = inFeatures;
}

/// <summary>One decoder layer's frozen weights.</summary>
public sealed class LayerWeights
{
    public required float[] InputNorm { get; init; }

    public required float[] PostAttentionNorm { get; init; }

    /// <summary>Indexed by <see cref="LinearModule"/>.</summary>
    public required Linear[] Linears { get; init; }

    public Linear this[LinearModule module] => Linears[(int)module];
}

/// <summary>
/// A Llama-family model's frozen base weights in float32 (converted once at load from F32, F16 or BF16), and the
/// rotary tables derived from its config. Shared, read-only, by every training pass and decoder over it, so many
/// adapters on one loaded base cost only their own weights.
/// </summary>
public sealed class LlamaModel
{
    public LlamaModel(ModelConfig config, float[] embedding, LayerWeights[] layers, float[] finalNorm, float[]? lmHead)
    {
        Config = config;
        Embedding = embedding;
        Layers = layers;
        FinalNorm = finalNorm;
        LmHead = lmHead;
        InverseFrequencies = Rope.InverseFrequencies(config);
    }

    public ModelConfig Config { get; }

    /// <summary>[vocab, hidden].</summary>
    public float[] Embedding { get; }

    public LayerWeights[] Layers { get; }

    public float[] FinalNorm { get; }

    /// <summary>[vocab, hidden], or null when tied to the embedding.</summary>
    public float[]? LmHead { get; }

    /// <summary>The output projection: lm_head, or the embedding when tied.</summary>
    public float[] OutputWeights => LmHead ?? Embedding;

    /// <summary>RoPE's per-pair inverse frequencies [head_dim / 2], scaling applied.</summary>
    internal float[] InverseFrequencies { get; }

    public long ParameterCount => Embedding.LongLength + FinalNorm.Length + (LmHead?.LongLength ?? 0)
        + Layers.Sum(layer => layer.InputNorm.Length + layer.PostAttentionNorm.Length + layer.Linears.Sum(linear => linear.Weight.LongLength + (linear.Bias?.Length ?? 0)));

    /// <summary>
    /// Loads a Hugging Face model directory: config.json, then model.safetensors or the shards listed by
    /// model.safetensors.index.json. The tensor set is checked against the config before any weight is read; each
    /// tensor is streamed from its file in bounded chunks straight into its float32 array.
    /// </summary>
    public static LlamaModel Load(string directory)
    {
        var config = ModelConfig.Load(directory);
        var files = OpenCheckpoint(directory);
        try
        {
            config.CheckTensors(files.SelectMany(file => file.Tensors.Select(tensor => (Path.GetFileName(file.Path), tensor))));
            var byName = new Dictionary<string, SafetensorsFile>(StringComparer.Ordinal);
            foreach (var file in files)
            {
                foreach (var tensor in file.Tensors)
                {
                    byName[tensor.Name] = file;
                }
            }

            float[] Read(string name) => byName[name].ReadSingles(name);
            var layers = new LayerWeights[config.Layers];
            for (var l = 0; l < config.Layers; l++)
            {
                var prefix = $"model.layers.{l}.";
                layers[l] = new LayerWeights
                {
                    InputNorm = Read(prefix + "input_layernorm.weight"),
                    PostAttentionNorm = Read(prefix + "post_attention_layernorm.weight"),
                    Linears = config.LinearModules().Select(linear => new Linear(Read(prefix + linear.Module + ".weight"),
                        linear.Bias ? Read(prefix + linear.Module + ".bias") : null, linear.Out, linear.In)).ToArray(),
                };
            }

            return new LlamaModel(config, Read("model.embed_tokens.weight"), layers, Read("model.norm.weight"),
                config.TieWordEmbeddings ? null : Read("lm_head.weight"));
        }
        finally
        {
            foreach (var file in files)
            {
                file.Dispose();
            }
        }
    }

    /// <summary>The checkpoint's safetensors files: the shards of model.safetensors.index.json, or model.safetensors.</summary>
    internal static List<SafetensorsFile> OpenCheckpoint(string directory)
    {
        var index = Path.Combine(directory, "model.safetensors.index.json");
        var names = new List<string>();
        if (File.Exists(index))
        {
            JsonObject? map;
            try
            {
                map = JsonNode.Parse(File.ReadAllText(index))?["weight_map"] as JsonObject;
            }
            catch (JsonException exception)
            {
                throw new UnsupportedModelException("model.safetensors.index.json", "model.safetensors.index.json", $"is not valid JSON ({exception.Message}).");
            }

            if (map is null)
            {
                throw new UnsupportedModelException("model.safetensors.index.json", "weight_map", "is missing.");
            }

            foreach (var (tensor, file) in map)
            {
                var shard = (file as JsonValue)?.TryGetValue<string>(out var text) == true ? text : null;
                if (shard is null || shard.Contains('/') || shard.Contains('\\') || shard.StartsWith('.'))
                {
                    throw new UnsupportedModelException("model.safetensors.index.json", $"weight_map.{tensor}", "must name a shard file in the model directory.");
                }

                if (!names.Contains(shard))
                {
                    names.Add(shard);
                }
            }
        }
        else if (File.Exists(Path.Combine(directory, "model.safetensors")))
        {
            names.Add("model.safetensors");
        }
        else
        {
            throw new UnsupportedModelException("model.safetensors", "model.safetensors", "the directory has neither model.safetensors nor model.safetensors.index.json.");
        }

        var files = new List<SafetensorsFile>();
        try
        {
            foreach (var name in names)
            {
                var path = Path.Combine(directory, name);
                if (!File.Exists(path))
                {
                    throw new UnsupportedModelException(name, name, "is listed in model.safetensors.index.json but missing.");
                }

                try
                {
                    files.Add(SafetensorsFile.Open(path));
                }
                catch (InvalidDataException exception)
                {
                    throw new UnsupportedModelException(name, name, exception.Message);
                }
            }

            return files;
        }
        catch
        {
            foreach (var file in files)
            {
                file.Dispose();
            }

            throw;
        }
    }
}

/// <summary>Rotary position embeddings, as transformers' LlamaRotaryEmbedding computes them (rotate_half convention).</summary>
internal static class Rope
{
    /// <summary>
    /// inv_freq[i] = 1 / θ^(2i/d) in float32 as PyTorch computes it, then the config's scaling: linear divides by the
    /// factor; Llama 3 divides low frequencies (wavelength above original_context / low_freq_factor) by the factor,
    /// keeps high ones (wavelength below original_context / high_freq_factor) and blends those between.
    /// </summary>
    public static float[] InverseFrequencies(ModelConfig config)
    {
        var half = config.HeadDim / 2;
        var frequencies = new float[half];
        for (var i = 0; i < half; i++)
        {
            var exponent = (float)(2 * i) / config.HeadDim;
            frequencies[i] = 1f / MathF.Pow((float)config.RopeTheta, exponent);
        }

        var scaling = config.RopeScaling;
        switch (scaling.Kind)
        {
            case RopeScalingKind.Linear:
                for (var i = 0; i < half; i++)
                {
                    frequencies[i] = (float)(frequencies[i] / scaling.Factor);
                }

                break;
            case RopeScalingKind.Llama3:
                var lowWavelength = scaling.OriginalMaxPositionEmbeddings / scaling.LowFrequencyFactor;
                var highWavelength = scaling.OriginalMaxPositionEmbeddings / scaling.HighFrequencyFactor;
                for (var i = 0; i < half; i++)
                {
                    var frequency = (double)frequencies[i];
                    var wavelength = 2 * Math.PI / frequency;
                    if (wavelength > lowWavelength)
                    {
                        frequency /= scaling.Factor;
                    }
                    else if (wavelength >= highWavelength)
                    {
                        var smooth = ((scaling.OriginalMaxPositionEmbeddings / wavelength) - scaling.LowFrequencyFactor) / (scaling.HighFrequencyFactor - scaling.LowFrequencyFactor);
                        frequency = ((1 - smooth) * frequency / scaling.Factor) + (smooth * frequency);
                    }

                    frequencies[i] = (float)frequency;
                }

                break;
        }

        return frequencies;
    }

    /// <summary>cos and sin of position·inv_freq (the product in float32, as PyTorch forms it) for one position.</summary>
    public static void Angles(float[] inverseFrequencies, int position, Span<float> cos, Span<float> sin)
    {
        for (var i = 0; i < inverseFrequencies.Length; i++)
        {
            var angle = position * inverseFrequencies[i];
            cos[i] = (float)Math.Cos(angle);
            sin[i] = (float)Math.Sin(angle);
        }
    }

    /// <summary>Rotates each head of a row in place: x[i], x[i+d/2] ← x[i]·cos − x[i+d/2]·sin, x[i+d/2]·cos + x[i]·sin.</summary>
    public static void Apply(Span<float> row, int heads, int headDim, ReadOnlySpan<float> cos, ReadOnlySpan<float> sin)
    {
        var half = headDim / 2;
        for (var h = 0; h < heads; h++)
        {
            var x = row.Slice(h * headDim, headDim);
            for (var i = 0; i < half; i++)
            {
                var a = x[i];
                var b = x[i + half];
                x[i] = (a * cos[i]) - (b * sin[i]);
                x[i + half] = (b * cos[i]) + (a * sin[i]);
            }
        }
    }

    /// <summary>The backward of <see cref="Apply"/>: the transpose of a rotation is the rotation by the opposite angle.</summary>
    public static void Backward(Span<float> dRow, int heads, int headDim, ReadOnlySpan<float> cos, ReadOnlySpan<float> sin)
    {
        var half = headDim / 2;
        for (var h = 0; h < heads; h++)
        {
            var d = dRow.Slice(h * headDim, headDim);
            for (var i = 0; i < half; i++)
            {
                var a = d[i];
                var b = d[i + half];
                d[i] = (a * cos[i]) + (b * sin[i]);
                d[i + half] = (b * cos[i]) - (a * sin[i]);
            }
        }
    }
}

/// <summary>Random models of a given shape, for benches and tests that need real sizes without real weights.</summary>
internal static class RandomModels
{
    public static LlamaModel Create(ModelConfig config, int seed, float scale = 0.02f)
    {
        var random = new Random(seed);
        float[] Normal(long count, float std)
        {
            var values = new float[count];
            for (long i = 0; i < count; i++)
            {
                values[i] = (random.NextSingle() - 0.5f) * 3.4641f * std;
            }

            return values;
        }

        float[] Ones(int count) => Enumerable.Repeat(1f, count).ToArray();
        var layers = Enumerable.Range(0, config.Layers).Select(_ => new LayerWeights
        {
            InputNorm = Ones(config.HiddenSize),
            PostAttentionNorm = Ones(config.HiddenSize),
            Linears = config.LinearModules().Select(linear => new Linear(Normal((long)linear.Out * linear.In, scale), linear.Bias ? Normal(linear.Out, scale) : null, linear.Out, linear.In)).ToArray(),
        }).ToArray();
        return new LlamaModel(config, Normal((long)config.VocabularySize * config.HiddenSize, scale), layers, Ones(config.HiddenSize),
            config.TieWordEmbeddings ? null : Normal((long)config.VocabularySize * config.HiddenSize, scale));
    }
}
