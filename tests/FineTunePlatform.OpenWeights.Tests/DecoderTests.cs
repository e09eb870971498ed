namespace FineTunePlatform.OpenWeights.Tests;

/// <summary>The KV-cached, multi-adapter decoder against the training pass (itself checked against PyTorch).</summary>
public sealed class DecoderTests
{
    [Theory]
    [InlineData(null)]
    [InlineData(5)]
    public void Incremental_decoding_gives_the_full_pass_logits_at_every_position(int? window)
    {
        var config = TinyModels.Config(architecture: window is null ? "LlamaForCausalLM" : "MistralForCausalLM", slidingWindow: window);
        var model = TinyModels.Model(config);
        var adapter = TinyModels.Adapter(config, seed: 3);
        var tokens = Enumerable.Range(0, 17).Select(i => (i * 7) % config.VocabularySize).ToArray();
        var full = new TrainingPass(model, adapter, 1, tokens.Length).Logits(tokens);
        var decoder = new KvCacheDecoder(model);
        var sequence = new DecodingSequence(model, adapter);
        var v = config.VocabularySize;
        // The prompt's first 6 tokens in one step, then one token per step.
        decoder.Step([(sequence, tokens[..6])]);
        Compare.Close(full.AsSpan(5 * v, v), sequence.Logits, 1e-5, "logits after the prompt");
        for (var position = 6; position < tokens.Length; position++)
        {
            decoder.Step([(sequence, [tokens[position]])]);
            Compare.Close(full.AsSpan(position * v, v), sequence.Logits, 1e-5, $"logits at position {position}");
        }
    }

    [Fact]
    public void One_step_over_sequences_with_different_adapters_gives_each_its_own_logits()
    {
        var config = TinyModels.Config(tied: false);
        var model = TinyModels.Model(config);
        var adapters = new LoraAdapter?[] { TinyModels.Adapter(config, 1), null, TinyModels.Adapter(config, 2, rank: 2, targets: [LinearModule.V, LinearModule.Down]), TinyModels.Adapter(config, 1) };
        var prompts = new[] { new[] { 1, 2, 3 }, new[] { 4, 5 }, new[] { 6, 7, 8, 9 }, new[] { 10 } };

        var alone = prompts.Select((prompt, i) =>
        {
            var sequence = new DecodingSequence(model, adapters[i]);
            new KvCacheDecoder(model).Step([(sequence, prompt)]);
            return sequence.Logits.ToArray();
        }).ToArray();

        var together = prompts.Select((_, i) => new DecodingSequence(model, adapters[i])).ToArray();
        new KvCacheDecoder(model).Step(prompts.Select((prompt, i) => (together[i], prompt)).ToList());
        for (var i = 0; i < prompts.Length; i++)
        {
            Compare.Close(alone[i], together[i].Logits, 1e-5, $"sequence {i} batched with the others");
        }

        // The adapters matter: sequence 0 differs from what the base alone gives.
        var baseOnly = new DecodingSequence(model, null);
        new KvCacheDecoder(model).Step([(baseOnly, prompts[0])]);
        Assert.True(baseOnly.Logits.Zip(together[0].Logits).Max(pair => Math.Abs(pair.First - pair.Second)) > 1e-2);
    }

    [Fact]
    public void Generation_is_greedy_or_seeded_and_stops_at_stop_tokens_or_the_budget()
    {
        var config = TinyModels.Config();
        var model = TinyModels.Model(config);
        var adapter = TinyModels.Adapter(config, 4);
        var greedy = new GenerationRequest([1, 2, 3], adapter, new GenerationOptions(MaxNewTokens: 12));
        var sampled = new GenerationRequest([1, 2, 3], adapter, new GenerationOptions(MaxNewTokens: 12, Temperature: 1.5, TopP: 0.9, Seed: 7));
        var first = Generator.Generate(model, [greedy, sampled, sampled with { Options = sampled.Options with { Seed = 8 } }]);
        var second = Generator.Generate(model, [sampled, greedy]);
        Assert.Equal(first[0].Tokens, second[1].Tokens);
        Assert.Equal(first[1].Tokens, second[0].Tokens);
        Assert.NotEqual(first[1].Tokens, first[2].Tokens);
        Assert.All(first, output => Assert.Equal(("length", 12), (output.FinishReason, output.Tokens.Length)));

        // Greedy tokens are the argmax of the full pass at each step.
        var all = new[] { 1, 2, 3 }.Concat(first[0].Tokens).ToArray();
        var logits = new TrainingPass(model, adapter, 1, all.Length).Logits(all);
        for (var i = 0; i < first[0].Tokens.Length; i++)
        {
            Assert.Equal(first[0].Tokens[i], System.Numerics.Tensors.TensorPrimitives.IndexOfMax(logits.AsSpan((2 + i) * config.VocabularySize, config.VocabularySize)));
        }

        var stopAt = first[0].Tokens[4];
        var stopped = Generator.Generate(model, [greedy with { Options = greedy.Options with { StopTokenIds = [stopAt] } }])[0];
        Assert.Equal("stop", stopped.FinishReason);
        Assert.Equal(first[0].Tokens.TakeWhile(token => token != stopAt), stopped.Tokens);
    }
}
