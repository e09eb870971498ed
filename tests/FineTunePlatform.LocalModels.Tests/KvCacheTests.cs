namespace FineTunePlatform.LocalModels.Tests;

public sealed class KvCacheTests
{
    [Fact]
    public void Incremental_decoding_gives_the_full_pass_probabilities_at_every_position()
    {
        var model = TransformerModel.Create(ModelPresets.Nano, seed: 12);
        var tokens = ChatTokens.RenderPrompt([new ChatTurn("system", "be brief"), new ChatTurn("user", "where is my parcel?")]);
        var full = new ForwardPass(model, 1, tokens.Length);
        full.Forward(tokens);
        var decoder = new KvCacheDecoder(model);
        var vocabulary = model.Preset.VocabularySize;

        for (var position = 0; position < tokens.Length; position++)
        {
            decoder.Append(tokens[position]);
            var expected = full.Probabilities.AsSpan(position * vocabulary, vocabulary);
            for (var v = 0; v < vocabulary; v++)
            {
                Assert.True(Math.Abs(expected[v] - decoder.Probabilities[v]) < 1e-6f, $"position {position}, token {v}: {expected[v]} vs {decoder.Probabilities[v]}");
            }
        }
    }
}
