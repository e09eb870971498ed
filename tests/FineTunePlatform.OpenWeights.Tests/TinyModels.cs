namespace FineTunePlatform.OpenWeights.Tests;

/// <summary>Small random models and adapters made in C# for tests that compare our own code paths with each other.</summary>
internal static class TinyModels
{
    public static ModelConfig Config(string architecture = "LlamaForCausalLM", bool tied = true, int? slidingWindow = null, int vocabulary = 64, int layers = 2) => ModelConfig.Parse($$"""
        {"architectures": ["{{architecture}}"], "hidden_size": 32, "num_hidden_layers": {{layers}}, "num_attention_heads": 4,
         "num_key_value_heads": 2, "intermediate_size": 48, "vocab_size": {{vocabulary}}, "max_position_embeddings": 128,
         "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "tie_word_embeddings": {{(tied ? "true" : "false")}}
         {{(slidingWindow is { } w ? $", \"sliding_window\": {w}" : "")}}}
        """);

    public static LlamaModel Model(ModelConfig config, int seed = 1) => RandomModels.Create(config, seed, scale: 0.3f);

    /// <summary>A PEFT-initialised adapter with B made non-zero, so it changes the model.</summary>
    public static LoraAdapter Adapter(ModelConfig config, int seed, int rank = 4, IReadOnlyList<LinearModule>? targets = null, double dropout = 0)
    {
        var adapter = LoraAdapter.Create(config, new LoraConfig(rank, 8, dropout, targets), seed);
        var random = new Random(seed + 1000);
        foreach (var layer in adapter.Pairs)
        {
            foreach (var pair in layer.OfType<LoraPair>())
            {
                for (var i = 0; i < pair.B.Length; i++)
                {
                    pair.B[i] = (random.NextSingle() - 0.5f) * 0.5f;
                }
            }
        }

        return adapter;
    }
}
