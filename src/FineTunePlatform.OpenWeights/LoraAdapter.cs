namespace FineTunePlatform.OpenWeights;

/// <summary>
/// LoRA's hyperparameters, as PEFT's LoraConfig names them: rank r, lora_alpha, lora_dropout, target_modules. The
/// update is ΔW = (alpha / r)·B·A (alpha / √r with rsLoRA).
/// </summary>
public sealed record LoraConfig(int Rank = 8, double Alpha = 16, double Dropout = 0.05, IReadOnlyList<LinearModule>? TargetModules = null, bool UseRsLora = false)
{
    public IReadOnlyList<LinearModule> Targets => TargetModules ?? LinearModules.All;

    public float Scaling => (float)(UseRsLora ? Alpha / Math.Sqrt(Rank) : Alpha / Rank);

    public void Validate()
    {
        if (Rank < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(Rank), Rank, "lora_rank must be at least 1.");
        }

        if (Alpha <= 0)
        {
            throw new ArgumentOutOfRangeException(nameof(Alpha), Alpha, "lora_alpha must be positive.");
        }

        if (Dropout is < 0 or >= 1)
        {
            throw new ArgumentOutOfRangeException(nameof(Dropout), Dropout, "lora_dropout must be in [0, 1).");
        }

        if (Targets.Count == 0 || Targets.Distinct().Count() != Targets.Count)
        {
            throw new ArgumentException("lora_target_modules must name at least one module, each once.", nameof(TargetModules));
        }
    }
}

/// <summary>One adapted module's low-rank pair: A [r, in] and B [out, r], row-major as PEFT stores lora_A/lora_B.</summary>
public sealed class LoraPair(float[] a, float[] b, int rank, int outFeatures, int inFeatures)
{
    public float[] A { get; } = a;

    public float[] B { get; } = b;

    public int Rank { get; } = rank;

    public int Out { get; } = outFeatures;

    public int In { get; } = inFeatures;
}

/// <summary>
/// A LoRA adapter over a base model's shape: a pair per (layer, target module), null where not adapted. Its
/// parameters are what training updates, what a checkpoint stores (megabytes) and what serving adds to a shared base.
/// </summary>
public sealed class LoraAdapter
{
    public LoraAdapter(ModelConfig model, LoraConfig config, LoraPair?[][] pairs)
    {
        config.Validate();
        Model = model;
        Config = config;
        Pairs = pairs;
    }

    public ModelConfig Model { get; }

    public LoraConfig Config { get; }

    /// <summary>[layer][module].</summary>
    public LoraPair?[][] Pairs { get; }

    public LoraPair? this[int layer, LinearModule module] => Pairs[layer][(int)module];

    public float Scaling => Config.Scaling;

    public long ParameterCount => Parameters().Sum(parameter => (long)parameter.Values.Length);

    /// <summary>
    /// A fresh adapter initialised as PEFT does (init_lora_weights=True): A Kaiming-uniform with a = √5, i.e.
    /// U(−1/√in, 1/√in), B zero, so the adapted model starts equal to the base. Deterministic for a seed.
    /// </summary>
    public static LoraAdapter Create(ModelConfig model, LoraConfig config, int seed)
    {
        config.Validate();
        var random = new Random(seed);
        var pairs = new LoraPair?[model.Layers][];
        for (var l = 0; l < model.Layers; l++)
        {
            pairs[l] = new LoraPair?[LinearModules.All.Count];
            foreach (var module in config.Targets.OrderBy(module => module))
            {
                var (outFeatures, inFeatures) = module.Shape(model);
                var bound = 1.0 / Math.Sqrt(inFeatures);
                var a = new float[config.Rank * inFeatures];
                for (var i = 0; i < a.Length; i++)
                {
                    a[i] = (float)(((random.NextDouble() * 2) - 1) * bound);
                }

                pairs[l][(int)module] = new LoraPair(a, new float[outFeatures * config.Rank], config.Rank, outFeatures, inFeatures);
            }
        }

        return new LoraAdapter(model, config, pairs);
    }

    /// <summary>An adapter of the same shape with every value zero: the gradient and optimizer-moment buffers.</summary>
    public LoraAdapter ZerosLike() => new(Model, Config, Pairs.Select(layer => layer.Select(pair => pair is null ? null
        : new LoraPair(new float[pair.A.Length], new float[pair.B.Length], pair.Rank, pair.Out, pair.In)).ToArray()).ToArray());

    public LoraAdapter Clone() => new(Model, Config, Pairs.Select(layer => layer.Select(pair => pair is null ? null
        : new LoraPair((float[])pair.A.Clone(), (float[])pair.B.Clone(), pair.Rank, pair.Out, pair.In)).ToArray()).ToArray());

    /// <summary>
    /// Every parameter tensor in a fixed order (layer, module, A then B) under its PEFT name, e.g.
    /// base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight, with its shape.
    /// </summary>
    public IEnumerable<(string Name, float[] Values, long[] Shape)> Parameters()
    {
        for (var l = 0; l < Pairs.Length; l++)
        {
            foreach (var module in LinearModules.All)
            {
                if (Pairs[l][(int)module] is { } pair)
                {
                    var prefix = PeftPrefix(l, module);
                    yield return (prefix + ".lora_A.weight", pair.A, [pair.Rank, pair.In]);
                    yield return (prefix + ".lora_B.weight", pair.B, [pair.Out, pair.Rank]);
                }
            }
        }
    }

    public static string PeftPrefix(int layer, LinearModule module) => $"base_model.model.model.layers.{layer}.{module.HfPath()}";
}
