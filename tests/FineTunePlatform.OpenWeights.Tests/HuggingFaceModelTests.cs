using System.Text.Json.Nodes;

namespace FineTunePlatform.OpenWeights.Tests;

/// <summary>
/// A whole model directory as an admin would import it (config, safetensors, tokenizer.json, tokenizer_config.json
/// with a real template, generation_config.json): inspected, loaded, fine-tuned on chat examples, served, exported.
/// </summary>
public sealed class HuggingFaceModelTests
{
    /// <summary>A tiny random Llama whose vocabulary fits the mini tokenizer, written as a Hugging Face directory.</summary>
    private static string MakeDirectory(string template = "smollm2")
    {
        var tokenizerDirectory = Fixtures.TokenizerWithTemplate(template, "", "<|im_end|>");
        var config = ModelConfig.Parse("""
            {"architectures": ["LlamaForCausalLM"], "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
             "num_key_value_heads": 2, "intermediate_size": 48, "vocab_size": 3264, "max_position_embeddings": 256,
             "rms_norm_eps": 1e-5, "tie_word_embeddings": true, "eos_token_id": 3258}
            """);
        var directory = Directory.CreateTempSubdirectory("openweights-model-").FullName;
        MergedExport.Write(RandomModels.Create(config, 5, scale: 0.3f), null, tokenizerDirectory, directory, TensorDType.BF16);
        File.WriteAllText(Path.Combine(directory, "generation_config.json"), """{"eos_token_id": [3258, 3256], "temperature": 0.7}""");
        return directory;
    }

    [Fact]
    public void Inspect_reports_the_model_and_refuses_a_vocabulary_that_disagrees_with_the_weights()
    {
        var directory = MakeDirectory();
        var summary = HuggingFaceModel.Inspect(directory);
        Assert.Equal((3264, true), (summary.TokenizerVocabularySize, summary.HasChatTemplate));
        Assert.Equal([3258, 3256], summary.StopTokenIds);
        Assert.Equal(summary.ParameterCount * 2, summary.WeightBytes);

        var configPath = Path.Combine(directory, "config.json");
        var config = JsonNode.Parse(File.ReadAllText(configPath))!.AsObject();
        config["vocab_size"] = 3000;
        File.WriteAllText(configPath, config.ToJsonString());
        Assert.Equal("model.embed_tokens.weight", Assert.Throws<UnsupportedModelException>(() => HuggingFaceModel.Inspect(directory)).Name);
    }

    [Fact]
    public void Fine_tune_on_chat_then_generate_the_reply_and_export_it()
    {
        var directory = MakeDirectory();
        using var loaded = HuggingFaceModel.Load(directory);
        var chat = loaded.Chat!;
        var conversations = new[] { ("in", " the world"), ("the", "in the") }
            .Select(pair => chat.EncodeForTraining([new ChatMessage("user", pair.Item1), new ChatMessage("assistant", pair.Item2)])).ToList();
        var adapter = LoraAdapter.Create(loaded.Model.Config, new LoraConfig(Rank: 8, Alpha: 16, Dropout: 0), seed: 1);
        var trained = LoraTrainer.Train(loaded.Model, adapter, conversations, new LoraTrainingOptions(Epochs: 30, BatchSize: 2, LearningRate: 2e-2, Seed: 3));

        var prompt = chat.EncodePrompt([new ChatMessage("user", "in")]);
        var reply = Generator.Generate(loaded.Model, [new GenerationRequest(prompt, trained, new GenerationOptions(MaxNewTokens: 10, StopTokenIds: loaded.StopTokenIds))])[0];
        Assert.Equal(("stop", " the world"), (reply.FinishReason, loaded.Tokenizer.Decode(reply.Tokens)));

        // The merged export serves the same reply without the adapter.
        var merged = Path.Combine(directory, "merged");
        MergedExport.Write(loaded.Model, trained, directory, merged);
        using var reloaded = HuggingFaceModel.Load(merged);
        var again = Generator.Generate(reloaded.Model, [new GenerationRequest(prompt, null, new GenerationOptions(MaxNewTokens: 10, StopTokenIds: reloaded.StopTokenIds))])[0];
        Assert.Equal(reply.Tokens, again.Tokens);
        Assert.True(File.Exists(Path.Combine(merged, "tokenizer.json")) && File.Exists(Path.Combine(merged, "generation_config.json")));
    }
}
