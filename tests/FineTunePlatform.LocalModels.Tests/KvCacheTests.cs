namespace FineTunePlatform.LocalModels.Tests;

public sealed class KvCacheTests
{
    [Fact]
    public void Incremental_decoding_gives_the_full_pass_probabilities_at_every_position()
    {
        var model = TransformerModel.Create(ModelPresets.Nano, seed: 12);
        var tokens = model.Preset.Tokenizer.RenderPrompt([new ChatTurn("system", "be brief"), new ChatTurn("user", "where is my parcel?")]);
        var full = new ForwardPass(model, 1, tokens.Length);
        full.Forward(tokens);
        var decoder = new KvCacheDecoder(model);
        var sequence = new DecodingSequence(model.Preset);
        var vocabulary = model.Preset.VocabularySize;

        for (var position = 0; position < tokens.Length; position++)
        {
            decoder.Append(sequence, tokens[position]);
            var expected = full.Probabilities.AsSpan(position * vocabulary, vocabulary);
            for (var v = 0; v < vocabulary; v++)
            {
                Assert.True(Math.Abs(expected[v] - sequence.Probabilities[v]) < 1e-6f, $"position {position}, token {v}: {expected[v]} vs {sequence.Probabilities[v]}");
            }
        }
    }

    [Fact]
    public void One_batched_step_over_sequences_of_different_lengths_gives_each_its_full_pass_probabilities()
    {
        var model = TransformerModel.Create(ModelPresets.Nano, seed: 12);
        var prompts = new[] { "a", "where is my parcel?", "refund please, it arrived broken" }
            .Select(text => model.Preset.Tokenizer.RenderPrompt([new ChatTurn("user", text)])).ToArray();
        var decoder = new KvCacheDecoder(model);
        var sequences = prompts.Select(_ => new DecodingSequence(model.Preset)).ToArray();
        // The first sequence already holds its prompt and adds one token while the others decode their whole prompts.
        decoder.Step([(sequences[0], prompts[0])]);
        var next = prompts[0].Append(ChatTokens.EndOfTurn).ToArray();
        decoder.Step([(sequences[0], [ChatTokens.EndOfTurn]), (sequences[1], prompts[1]), (sequences[2], prompts[2])]);

        var vocabulary = model.Preset.VocabularySize;
        foreach (var (sequence, tokens) in new[] { (sequences[0], next), (sequences[1], prompts[1]), (sequences[2], prompts[2]) })
        {
            var full = new ForwardPass(model, 1, tokens.Length);
            full.Forward(tokens);
            var expected = full.Probabilities.AsSpan((tokens.Length - 1) * vocabulary, vocabulary);
            Assert.Equal(tokens.Length, sequence.Position);
            for (var v = 0; v < vocabulary; v++)
            {
                Assert.True(Math.Abs(expected[v] - sequence.Probabilities[v]) < 1e-6f, $"{tokens.Length} tokens, token {v}: {expected[v]} vs {sequence.Probabilities[v]}");
            }
        }
    }
}
