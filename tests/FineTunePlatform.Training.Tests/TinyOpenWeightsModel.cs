using System.Text.Json;
using FineTunePlatform.OpenWeights.Tests;

namespace FineTunePlatform.Training.Tests;

/// <summary>
/// A tiny random Llama in the Hugging Face layout, as an admin would import a downloaded checkpoint: config.json and
/// BF16 safetensors written by the PyTorch reference (not by our own writer), the committed mini byte-level BPE
/// tokenizer (cut from Qwen's), SmolLM2's real ChatML template in tokenizer_config.json, and a generation_config.json
/// whose end-of-turn token is `&lt;|im_end|&gt;`.
/// </summary>
internal static class TinyOpenWeightsModel
{
    /// <summary>The mini tokenizer's size: 256 byte tokens, 3,000 merges, 8 special tokens.</summary>
    public const int VocabularySize = 3264;

    public const int ImEnd = 3258;

    public static string Write(string directory, int seed = 7, string dtype = "BF16", int shards = 1)
    {
        Directory.CreateDirectory(directory);
        var spec = Path.Combine(directory, "..", $"{Path.GetFileName(directory)}.spec.json");
        File.WriteAllText(spec, JsonSerializer.Serialize(new
        {
            config = new Dictionary<string, object>
            {
                ["architectures"] = new[] { "LlamaForCausalLM" },
                ["model_type"] = "llama",
                ["hidden_size"] = 64,
                ["num_hidden_layers"] = 2,
                ["num_attention_heads"] = 4,
                ["num_key_value_heads"] = 2,
                ["intermediate_size"] = 128,
                ["vocab_size"] = VocabularySize,
                ["max_position_embeddings"] = 512,
                ["rms_norm_eps"] = 1e-5,
                ["rope_theta"] = 10000.0,
                ["hidden_act"] = "silu",
                ["tie_word_embeddings"] = true,
                ["bos_token_id"] = 3256,
                ["eos_token_id"] = ImEnd,
            },
            seed,
            directory,
            dtype,
            shards,
        }));
        PythonReference.Run("make-model", spec);
        File.Delete(spec);
        var fixtures = Path.Combine(AppContext.BaseDirectory, "fixtures");
        File.Copy(Path.Combine(fixtures, "tokenizer", "tokenizer.json"), Path.Combine(directory, "tokenizer.json"), overwrite: true);
        File.WriteAllText(Path.Combine(directory, "tokenizer_config.json"), JsonSerializer.Serialize(new Dictionary<string, object?>
        {
            ["bos_token"] = null,
            ["eos_token"] = "<|im_end|>",
            ["pad_token"] = "<|endoftext|>",
            ["chat_template"] = File.ReadAllText(Path.Combine(fixtures, "templates", "smollm2.jinja")),
        }));
        File.WriteAllText(Path.Combine(directory, "generation_config.json"), JsonSerializer.Serialize(new { eos_token_id = ImEnd }));
        return directory;
    }
}
