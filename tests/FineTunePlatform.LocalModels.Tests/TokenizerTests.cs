using System.Text;

namespace FineTunePlatform.LocalModels.Tests;

public sealed class TokenizerTests
{
    [Theory]
    [InlineData("Refund my invoice #12, the app crashes when I log in.")]
    [InlineData("  leading spaces, tabs\tand\nnew lines  ")]
    [InlineData("Ünïcödé — 日本語のテキスト 🎉 and emoji")]
    [InlineData("order 48213 of 2026-12-01: 3 × €19.99")]
    [InlineData("")]
    public void The_built_in_bpe_decodes_what_it_encodes_byte_for_byte(string text)
    {
        var tokenizer = ChatTokenizer.BuiltIn;
        var tokens = tokenizer.Encode(text);

        Assert.Equal(text, tokenizer.Decode(tokens));
        Assert.All(tokens, token => Assert.InRange(token, 0, tokenizer.VocabularySize - 1));
        Assert.DoesNotContain(tokens, token => token is >= 256 and < BpeTokenizer.FirstMergedToken);
        // Shorter than bytes for English: what the longer contexts and faster training come from.
        if (text.StartsWith("Refund", StringComparison.Ordinal))
        {
            Assert.True(tokens.Length * 2 <= Encoding.UTF8.GetByteCount(text), $"{tokens.Length} tokens for {Encoding.UTF8.GetByteCount(text)} bytes");
        }
    }

    [Fact]
    public void Encoding_equals_the_plain_merge_loop_on_words_the_cache_has_and_has_not_seen()
    {
        // The reference: bytes, then the earliest-learned merge applied everywhere, round by round, on a fresh list
        // (what the tokenizer did before it merged in place), over each pre-token.
        var tokenizer = (BpeTokenizer)ChatTokenizer.BuiltIn;
        var ranks = tokenizer.Merges.Select((merge, i) => (merge, token: BpeTokenizer.FirstMergedToken + i)).ToDictionary(entry => entry.merge, entry => entry.token);
        int[] Reference(string text) => BpeTokenizer.PreTokens(text).SelectMany(piece =>
        {
            var parts = Encoding.UTF8.GetBytes(piece).Select(b => (int)b).ToList();
            while (true)
            {
                var best = Enumerable.Range(0, Math.Max(0, parts.Count - 1))
                    .Select(i => ranks.TryGetValue((parts[i], parts[i + 1]), out var merged) ? merged : int.MaxValue).DefaultIfEmpty(int.MaxValue).Min();
                if (best == int.MaxValue)
                {
                    return parts;
                }

                var (left, right) = tokenizer.Merges[best - BpeTokenizer.FirstMergedToken];
                var next = new List<int>();
                for (var i = 0; i < parts.Count; i++)
                {
                    if (i + 1 < parts.Count && parts[i] == left && parts[i + 1] == right)
                    {
                        next.Add(best);
                        i++;
                    }
                    else
                    {
                        next.Add(parts[i]);
                    }
                }

                parts = next;
            }
        }).ToArray();

        var random = new Random(3);
        var texts = Enumerable.Range(0, 300).Select(_ => string.Join(' ', Enumerable.Range(0, random.Next(1, 30)).Select(_ =>
            new string(Enumerable.Range(0, random.Next(1, 14)).Select(_ => "etaoinshrdlucmfwypvbgkqjxz .,'!?0123456789éü"[random.Next(44)]).ToArray()))))
            .Append("Refund my invoice #12, the app crashes when I log in.").Append(new string('a', 700)).Append("Ünïcödé — 日本語 🎉").ToList();
        foreach (var text in texts.Concat(texts))
        {
            Assert.Equal(Reference(text), tokenizer.Encode(text));
        }
    }

    [Fact]
    public void Digits_stay_single_tokens_so_numbers_are_copied_digit_by_digit()
    {
        var tokens = ChatTokenizer.BuiltIn.Encode("48213");
        Assert.Equal("48213".Select(digit => (int)(byte)digit), tokens);
    }

    [Fact]
    public void Training_merges_the_most_frequent_pairs_first_and_saves_and_loads_the_same_tokenizer()
    {
        var texts = Enumerable.Repeat("the cat and the hat and the bat", 50).Append("zebra").ToList();
        var tokenizer = BpeTokenizer.Train(texts, BpeTokenizer.FirstMergedToken + 6, "test-bpe");

        // "at" (cat, hat, bat) and "he" (the, three times) are the most frequent pairs; the tie goes to the smaller pair.
        Assert.Equal(((int)'a', (int)'t'), tokenizer.Merges[0]);
        Assert.Equal(((int)'h', (int)'e'), tokenizer.Merges[1]);
        Assert.True(tokenizer.Encode(" the cat").Length < Encoding.UTF8.GetByteCount(" the cat"));

        using var stream = new MemoryStream();
        tokenizer.Save(stream);
        var loaded = BpeTokenizer.Load(new MemoryStream(stream.ToArray()));
        Assert.Equal("test-bpe", loaded.Name);
        Assert.Equal(tokenizer.Merges, loaded.Merges);
        Assert.Equal(tokenizer.Encode("the zebra and the cat"), loaded.Encode("the zebra and the cat"));
    }

    [Fact]
    public void The_chat_template_learns_only_assistant_tokens_with_either_tokenizer()
    {
        ChatTurn[] conversation = [new("system", "be brief"), new("user", "hi"), new("assistant", "no", Weight: 0), new("user", "again"), new("assistant", "okay then")];
        var (tokens, weights) = ChatTokenizer.BuiltIn.Render(conversation);

        var learned = tokens.Zip(weights).Where(pair => pair.Second > 0).Select(pair => pair.First).ToList();
        Assert.Equal(ChatTokens.EndOfTurn, learned[^1]);
        Assert.Equal("okay then", ChatTokenizer.BuiltIn.Decode(learned));
        Assert.Equal(ChatTokens.Assistant, ChatTokenizer.BuiltIn.RenderPrompt([new("user", "hi")])[^1]);
    }

    [Fact]
    public void A_checkpoint_names_its_tokenizer_and_one_without_a_name_is_a_byte_level_model()
    {
        var bpe = TransformerModel.Create(ModelPresets.Nano, seed: 1);
        using var buffer = new MemoryStream();
        Checkpoint.SaveModel(buffer, bpe);
        Assert.Same(ChatTokenizer.BuiltIn, Checkpoint.Load(new MemoryStream(buffer.ToArray())).Model.Preset.Tokenizer);

        // A model saved before BPE (the header has no tokenizer) still loads, as bytes.
        var old = new ModelPreset("local-nano", ContextLength: 128, Layers: 2, Heads: 4, Channels: 64);
        using var oldBuffer = new MemoryStream();
        Checkpoint.SaveModel(oldBuffer, TransformerModel.Create(old, seed: 1));
        var bytes = oldBuffer.ToArray();
        var headerLength = BitConverter.ToInt32(bytes, 12);
        var header = Encoding.UTF8.GetString(bytes, 16, headerLength);
        Assert.Contains("\"Tokenizer\":\"bytes\"", header, StringComparison.Ordinal);
        var loaded = Checkpoint.Load(new MemoryStream(bytes)).Model;
        Assert.Same(ChatTokenizer.ByteLevel, loaded.Preset.Tokenizer);
        Assert.Equal(264, loaded.Preset.VocabularySize);
    }
}

public sealed class ContextWindowTests
{
    [Fact]
    public void A_sequence_longer_than_the_context_keeps_its_end_and_is_reported_truncated()
    {
        var preset = ModelPresets.Nano with { ContextLength = 16 };
        ChatTurn[] messages = [new("system", string.Join(' ', Enumerable.Repeat("long rules", 20))), new("user", "route this"), new("assistant", "billing")];

        var fit = ContextWindow.Check(preset, messages);
        var (tokens, weights) = ContextWindow.Fit(preset.Tokenizer.Render(messages), preset.ContextLength);

        Assert.True(fit.Truncated);
        Assert.False(fit.NothingToLearn);
        Assert.Equal(fit.LearnedTokens, fit.LearnedTokensKept);
        Assert.Equal(17, tokens.Length);
        Assert.Equal(ChatTokens.EndOfTurn, tokens[^1]);
        Assert.Equal(1f, weights[^1]);
    }

    [Fact]
    public void Examples_without_a_learned_token_are_counted_listed_and_training_on_only_those_is_refused()
    {
        List<SupervisedExample> examples =
        [
            new([new("user", "a"), new("assistant", "skip me", Weight: 0)]),
            new([new("user", "b"), new("assistant", "learn me")]),
            new([new("user", "c"), new("assistant", "skip me too", Weight: 0)]),
        ];

        var fit = ContextWindow.Check(ModelPresets.Nano, examples);

        Assert.Equal(2, fit.WithoutLearnedTokens);
        Assert.Equal([0, 2], fit.FirstWithoutLearnedTokens);
        Assert.False(fit.NothingToLearn);
        var error = Assert.Throws<ArgumentException>(() => LocalTrainer.Train(TransformerModel.Create(ModelPresets.Nano, 1), [examples[0], examples[2]], new TrainingOptions(1, 2, 1, 1)));
        Assert.Contains("None of the 2 examples has an assistant token to learn", error.Message, StringComparison.Ordinal);
    }
}

public sealed class AutoHyperparametersTests
{
    [Theory]
    [InlineData(40, 2, 25)]    // 20 steps per epoch: 25 epochs for 500 steps
    [InlineData(100, 4, 20)]   // 25 steps per epoch
    [InlineData(400, 16, 20)]  // 25 steps per epoch
    [InlineData(10, 2, 40)]    // 5 steps per epoch: 40 epochs, the most auto picks
    [InlineData(5000, 16, 3)]  // a large file: still 3 epochs
    public void Epochs_give_at_least_the_minimum_number_of_steps_within_bounds(int examples, int batch, int epochs)
    {
        var resolved = AutoHyperparameters.Resolve(ModelPresets.Nano, pretrained: true, examples, tokensPerEpoch: examples * 30);

        Assert.Equal(batch, resolved.BatchSize);
        Assert.Equal(epochs, resolved.Epochs);
        Assert.Equal(1.0 / 3, resolved.LearningRateMultiplier, 6);
        Assert.Equal(3, resolved.Reasons.Count);
    }

    [Fact]
    public void The_token_budget_caps_epochs_and_values_set_by_the_user_are_kept()
    {
        var longExamples = AutoHyperparameters.Resolve(ModelPresets.Nano, pretrained: true, examples: 40, tokensPerEpoch: 80_000);
        Assert.Equal(7, longExamples.Epochs); // 600,000 tokens / 80,000 per epoch, under the 25 that 500 steps would take
        Assert.Contains("budget", longExamples.Reasons[1], StringComparison.Ordinal);

        var set = AutoHyperparameters.Resolve(ModelPresets.Nano, pretrained: false, examples: 40, tokensPerEpoch: 1000, epochs: 2, batchSize: 1, learningRateMultiplier: 0.5);
        Assert.Equal((2, 1, 0.5), (set.Epochs, set.BatchSize, set.LearningRateMultiplier));
        Assert.All(set.Reasons, reason => Assert.EndsWith("as set", reason, StringComparison.Ordinal));
        Assert.Equal(1.0, AutoHyperparameters.Resolve(ModelPresets.Nano, pretrained: false, examples: 40, tokensPerEpoch: 1000).LearningRateMultiplier);
    }
}
