namespace FineTunePlatform.LocalModels.Tests;

public sealed class BaseModelTests
{
    [Fact]
    public void Local_nano_ships_pre_trained_weights_that_answer_untrained_prompts_with_english_text()
    {
        Assert.True(ModelPresets.IsPretrained(ModelPresets.Nano));
        var model = ModelPresets.LoadBase(ModelPresets.Nano);
        Assert.Equal(ModelPresets.Nano, model.Preset);

        foreach (var prompt in new[] { "hello", "refund my invoice #12", "What does parcel mean?", "Which word means \"a building where books are kept\"?" })
        {
            var reply = Generator.Complete(model, [new ChatTurn("user", prompt)], new SamplingOptions(Temperature: 0, MaxTokens: 32));
            Assert.False(string.IsNullOrWhiteSpace(reply.Text), $"the base answered \"{prompt}\" with nothing");
            Assert.True(reply.Text.Any(char.IsLetter), $"\"{prompt}\" -> \"{reply.Text}\"");
        }
    }

    [Fact]
    public void The_shipped_base_predicts_held_out_english_far_better_than_random_weights()
    {
        // Sentences that are not WordNet glosses: the base learned English, not only its corpus.
        List<SupervisedExample> text =
        [
            new([new("user", "Tell me about the weather."), new("assistant", "The weather is cold and wet today, with rain in the afternoon.")]),
            new([new("user", "What is a library?"), new("assistant", "A building where books are kept and people can read them.")]),
            new([new("user", "Define happy."), new("assistant", "Feeling or showing pleasure or contentment.")]),
        ];

        var pretrained = LocalTrainer.Evaluate(ModelPresets.LoadBase(ModelPresets.Nano), text, batchSize: 3).Loss;
        var random = LocalTrainer.Evaluate(TransformerModel.Create(ModelPresets.Nano, seed: 0), text, batchSize: 3).Loss;

        Assert.True(pretrained < random - 2, $"per-token loss {pretrained:F2} (base) vs {random:F2} (random weights)");
    }
}
