namespace FineTunePlatform.LocalModels.Tests;

public sealed class LearningTests
{
    [Fact]
    public void Local_nano_learns_to_route_tickets_and_its_base_does_not()
    {
        var train = TicketTask.Generate(200, seed: 1);
        var heldOut = TicketTask.Generate(50, seed: 2);
        var baseModel = TransformerModel.Create(ModelPresets.Nano, seed: 42);
        var losses = new List<(int Epoch, double Loss)>();

        var tuned = LocalTrainer.Train(baseModel, train.Select(item => item.Example).ToList(),
            new TrainingOptions(Epochs: 14, BatchSize: 8, LearningRateMultiplier: 1, Seed: 42),
            progress => losses.Add((progress.Epoch, progress.TrainLoss)));

        var baseAccuracy = TicketTask.ExactMatch(baseModel, heldOut);
        var tunedAccuracy = TicketTask.ExactMatch(tuned, heldOut);
        var meanLossPerEpoch = losses.GroupBy(entry => entry.Epoch).Select(epoch => epoch.Average(entry => entry.Loss)).ToList();

        Assert.True(baseAccuracy <= 0.40, $"the untuned base should be at chance or below, got {baseAccuracy:P0}");
        Assert.True(tunedAccuracy >= 0.90, $"tuned exact match {tunedAccuracy:P0}; mean loss per epoch {string.Join(", ", meanLossPerEpoch.Select(loss => loss.ToString("F3", System.Globalization.CultureInfo.InvariantCulture)))}");
        // Falling every epoch until it has converged: once under 0.05 nats the position jitter's shifts (a fresh
        // placement of each example every step) make the mean wobble by a few thousandths.
        for (var epoch = 1; epoch < meanLossPerEpoch.Count; epoch++)
        {
            Assert.True(meanLossPerEpoch[epoch] < meanLossPerEpoch[epoch - 1] || meanLossPerEpoch[epoch - 1] < 0.05,
                $"mean loss rose from epoch {epoch} to {epoch + 1}: {meanLossPerEpoch[epoch - 1]} -> {meanLossPerEpoch[epoch]}");
        }
    }

    [Fact]
    public void The_same_seed_gives_the_same_weights_bit_for_bit()
    {
        var examples = TicketTask.Generate(24, seed: 5).Select(item => item.Example).ToList();
        var options = new TrainingOptions(Epochs: 2, BatchSize: 4, LearningRateMultiplier: 1, Seed: 9);

        var first = LocalTrainer.Train(TransformerModel.Create(ModelPresets.Nano, seed: 9), examples, options);
        var second = LocalTrainer.Train(TransformerModel.Create(ModelPresets.Nano, seed: 9), examples, options);
        var otherSeed = LocalTrainer.Train(TransformerModel.Create(ModelPresets.Nano, seed: 9), examples, options with { Seed = 10 });

        Assert.True(first.Parameters.AsSpan().SequenceEqual(second.Parameters), "same seed, same data: identical weights");
        Assert.False(first.Parameters.AsSpan().SequenceEqual(otherSeed.Parameters), "another seed shuffles differently");
    }

    [Fact]
    public void Sampling_is_reproducible_for_a_seed_and_respects_max_tokens()
    {
        var model = TransformerModel.Create(ModelPresets.Nano, seed: 3);
        ChatTurn[] prompt = [new("user", "hello")];

        var first = Generator.Complete(model, prompt, new SamplingOptions(Temperature: 1, MaxTokens: 12, Seed: 5));
        var second = Generator.Complete(model, prompt, new SamplingOptions(Temperature: 1, MaxTokens: 12, Seed: 5));

        Assert.Equal(first, second);
        Assert.True(first.CompletionTokens <= 12);
        Assert.True(first.FinishReason is "length" or "stop");
    }
}

public sealed class StopSequenceTests
{
    [Fact]
    public void A_stop_sequence_ends_the_reply_without_being_part_of_it()
    {
        var model = TransformerModel.Create(ModelPresets.Nano, seed: 4);
        ChatTurn[] prompt = [new("user", "hello there")];
        var options = new SamplingOptions(Temperature: 1, MaxTokens: 20, Seed: 8);
        var free = Generator.Complete(model, prompt, options);
        Assert.False(string.IsNullOrEmpty(free.Text), "the seeded sample should produce some text");

        // Sampling is deterministic for the seed, so a stop sequence equal to the first character ends the reply at once.
        var stopped = Generator.Complete(model, prompt, options, stop: [free.Text[..1]]);

        Assert.Equal("stop", stopped.FinishReason);
        Assert.Equal("", stopped.Text);
    }
}
