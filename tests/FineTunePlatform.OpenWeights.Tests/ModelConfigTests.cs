using System.Text.Json.Nodes;

namespace FineTunePlatform.OpenWeights.Tests;

/// <summary>config.json parsing and the checks that refuse what we cannot run, naming the field.</summary>
public sealed class ModelConfigTests
{
    private const string SmolLm2 = """
        {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 576, "num_hidden_layers": 30,
         "num_attention_heads": 9, "num_key_value_heads": 3, "intermediate_size": 1536, "vocab_size": 49152,
         "max_position_embeddings": 8192, "rms_norm_eps": 1e-05, "rope_theta": 100000, "tie_word_embeddings": true,
         "hidden_act": "silu", "bos_token_id": 1, "eos_token_id": 2, "rope_scaling": null, "torch_dtype": "bfloat16"}
        """;

    private static string With(string json, string field, JsonNode? value)
    {
        var root = JsonNode.Parse(json)!.AsObject();
        if (value is null)
        {
            root.Remove(field);
        }
        else
        {
            root[field] = value;
        }

        return root.ToJsonString();
    }

    [Fact]
    public void SmolLm2_config_is_read_with_its_shape()
    {
        var config = ModelConfig.Parse(SmolLm2);
        Assert.Equal((576, 30, 9, 3, 64, 1536, 49152, 8192), (config.HiddenSize, config.Layers, config.Heads, config.KeyValueHeads, config.HeadDim, config.IntermediateSize, config.VocabularySize, config.MaxPositionEmbeddings));
        Assert.True(config.TieWordEmbeddings);
        Assert.False(config.QkvBias);
        Assert.Equal(RopeScalingKind.None, config.RopeScaling.Kind);
        Assert.Equal([2], config.EosTokenIds);
        Assert.Equal(1 + (30 * 9) + 1, config.ExpectedTensors().Count);
    }

    [Fact]
    public void Llama3_rope_scaling_and_qwen2_biases_and_mistral_window_are_read()
    {
        var llama = ModelConfig.Parse(With(SmolLm2, "rope_scaling", JsonNode.Parse("""{"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}""")));
        Assert.Equal(new RopeScaling(RopeScalingKind.Llama3, 32, 1, 4, 8192), llama.RopeScaling);
        var qwen = ModelConfig.Parse(With(SmolLm2, "architectures", new JsonArray("Qwen2ForCausalLM")));
        Assert.True(qwen.QkvBias);
        Assert.False(qwen.OutputBias);
        Assert.Contains(qwen.ExpectedTensors(), tensor => tensor.Name == "model.layers.0.self_attn.q_proj.bias");
        var mistral = ModelConfig.Parse(With(With(SmolLm2, "architectures", new JsonArray("MistralForCausalLM")), "sliding_window", 4096));
        Assert.Equal(4096, mistral.SlidingWindow);
        Assert.Null(ModelConfig.Parse(With(With(SmolLm2, "architectures", new JsonArray("MistralForCausalLM")), "sliding_window", null)).SlidingWindow);
    }

    [Theory]
    [InlineData("architectures", "[\"GPT2LMHeadModel\"]", "architectures")]
    [InlineData("architectures", "[]", "architectures")]
    [InlineData("hidden_size", null, "hidden_size")]
    [InlineData("hidden_size", "\"576\"", "hidden_size")]
    [InlineData("num_key_value_heads", "4", "num_key_value_heads")]
    [InlineData("hidden_act", "\"gelu\"", "hidden_act")]
    [InlineData("rope_scaling", "{\"rope_type\": \"yarn\", \"factor\": 4.0}", "rope_scaling.rope_type")]
    [InlineData("rope_scaling", "{\"type\": \"dynamic\", \"factor\": 4.0}", "rope_scaling.type")]
    [InlineData("rope_scaling", "{\"rope_type\": \"llama3\", \"factor\": 8.0, \"low_freq_factor\": 1.0, \"high_freq_factor\": 4.0}", "rope_scaling.original_max_position_embeddings")]
    [InlineData("rope_scaling", "{\"rope_type\": \"llama3\", \"factor\": 8.0, \"low_freq_factor\": 4.0, \"high_freq_factor\": 1.0, \"original_max_position_embeddings\": 8192}", "rope_scaling.high_freq_factor")]
    [InlineData("head_dim", "63", "head_dim")]
    [InlineData("rms_norm_eps", "0", "rms_norm_eps")]
    [InlineData("attention_dropout", "0.1", "attention_dropout")]
    [InlineData("intermediate_size", "-1", "intermediate_size")]
    public void What_we_cannot_run_is_refused_naming_the_field(string field, string? value, string named)
    {
        var exception = Assert.Throws<UnsupportedModelException>(() => ModelConfig.Parse(With(SmolLm2, field, value is null ? null : JsonNode.Parse(value))));
        Assert.Equal("config.json", exception.File);
        Assert.Equal(named, exception.Name);
    }

    [Fact]
    public void Qwen2s_own_sliding_window_is_refused()
    {
        var json = With(With(SmolLm2, "architectures", new JsonArray("Qwen2ForCausalLM")), "use_sliding_window", true);
        Assert.Equal("use_sliding_window", Assert.Throws<UnsupportedModelException>(() => ModelConfig.Parse(json)).Name);
    }

    [Fact]
    public void Invalid_json_is_refused_as_config_json()
    {
        Assert.Equal("config.json", Assert.Throws<UnsupportedModelException>(() => ModelConfig.Parse("{not json")).Name);
    }

    private static IEnumerable<(string, TensorInfo)> Tensors(ModelConfig config, Func<(string Name, long[] Shape), (string Name, TensorDType DType, long[] Shape)?>? change = null)
    {
        long offset = 0;
        foreach (var expected in config.ExpectedTensors())
        {
            var tensor = change is null ? (expected.Name, TensorDType.BF16, expected.Shape) : change(expected);
            if (tensor is { } t)
            {
                var info = new TensorInfo(t.Name, t.DType, t.Shape, offset, offset + (t.Shape.Aggregate(1L, (a, b) => a * b) * 2));
                offset = info.DataEnd;
                yield return ("model.safetensors", info);
            }
        }
    }

    [Fact]
    public void A_complete_tensor_set_passes_and_each_defect_is_refused_naming_the_tensor()
    {
        var config = ModelConfig.Parse(SmolLm2);
        config.CheckTensors(Tensors(config));
        // Tied: a stored lm_head is ignored, as transformers ties it; old checkpoints' inv_freq buffers too.
        config.CheckTensors(Tensors(config).Append(("model.safetensors", new TensorInfo("lm_head.weight", TensorDType.BF16, [49152, 576], 0, 0)))
            .Append(("model.safetensors", new TensorInfo("model.layers.0.self_attn.rotary_emb.inv_freq", TensorDType.F32, [32], 0, 0))));

        void Refused(string tensor, Func<(string Name, long[] Shape), (string, TensorDType, long[])?> change, IEnumerable<(string, TensorInfo)>? extra = null)
        {
            var exception = Assert.Throws<UnsupportedModelException>(() => config.CheckTensors(Tensors(config, change).Concat(extra ?? [])));
            Assert.Equal(tensor, exception.Name);
        }

        const string up = "model.layers.3.mlp.up_proj.weight";
        Refused(up, t => t.Name == up ? null : (t.Name, TensorDType.BF16, t.Shape));
        Refused(up, t => t.Name == up ? (t.Name, TensorDType.BF16, [1536, 575]) : (t.Name, TensorDType.BF16, t.Shape));
        Refused(up, t => t.Name == up ? (t.Name, TensorDType.I32, t.Shape) : (t.Name, TensorDType.BF16, t.Shape));
        Refused("model.layers.30.mlp.up_proj.weight", t => (t.Name, TensorDType.BF16, t.Shape),
            [("model-2.safetensors", new TensorInfo("model.layers.30.mlp.up_proj.weight", TensorDType.BF16, [1536, 576], 0, 0))]);
        Refused(up, t => (t.Name, TensorDType.BF16, t.Shape), [("model-2.safetensors", new TensorInfo(up, TensorDType.BF16, [1536, 576], 0, 0))]);
    }
}
