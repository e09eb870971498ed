namespace FineTunePlatform.LocalModels.Tests;

public sealed class CheckpointTests
{
    private static readonly List<SupervisedExample> Examples = TicketTask.Generate(24, seed: 11).Select(item => item.Example).ToList();
    private static readonly TrainingOptions Options = new(Epochs: 2, BatchSize: 4, LearningRateMultiplier: 1, Seed: 5);

    [Fact]
    public void Resuming_from_a_saved_checkpoint_reaches_exactly_the_uninterrupted_weights()
    {
        var start = TransformerModel.Create(ModelPresets.Nano, seed: 5);
        var straight = LocalTrainer.Train(start, Examples, Options);

        byte[]? saved = null;
        LocalTrainer.Train(start, Examples, Options with { Epochs = 2 }, onEpochEnd: checkpoint =>
        {
            if (checkpoint.EpochsCompleted == 1)
            {
                using var buffer = new MemoryStream();
                Checkpoint.Save(buffer, checkpoint);
                saved = buffer.ToArray();
            }
        });
        var restored = Checkpoint.Load(new MemoryStream(saved!));
        var resumed = LocalTrainer.Train(start, Examples, Options, resumeFrom: restored);

        Assert.Equal(1, restored.EpochsCompleted);
        Assert.True(straight.Parameters.AsSpan().SequenceEqual(resumed.Parameters), "resumed weights must equal the uninterrupted run's bit for bit");
    }

    [Fact]
    public void Models_round_trip_through_the_format()
    {
        var model = TransformerModel.Create(ModelPresets.Nano, seed: 1);
        using var buffer = new MemoryStream();

        Checkpoint.SaveModel(buffer, model);
        var loaded = Checkpoint.Load(new MemoryStream(buffer.ToArray()));

        Assert.Equal(ModelPresets.Nano, loaded.Model.Preset);
        Assert.True(model.Parameters.AsSpan().SequenceEqual(loaded.Model.Parameters));
        Assert.Null(loaded.FirstMoment);
    }

    [Theory]
    [InlineData("truncated", "truncated")]
    [InlineData("flipped", "checksum")]
    [InlineData("foreign", "not a FineTunePlatform model")]
    public void Corrupt_or_truncated_checkpoints_are_rejected_with_a_clear_message(string damage, string expected)
    {
        using var buffer = new MemoryStream();
        Checkpoint.SaveModel(buffer, TransformerModel.Create(ModelPresets.Nano, seed: 1));
        var bytes = buffer.ToArray();
        bytes = damage switch
        {
            "truncated" => bytes[..(bytes.Length / 2)],
            "flipped" => Flip(bytes, bytes.Length / 2),
            _ => [.. "PK\u0003\u0004"u8, .. bytes[4..]],
        };

        var error = Assert.Throws<InvalidDataException>(() => Checkpoint.Load(new MemoryStream(bytes)));

        Assert.Contains(expected, error.Message, StringComparison.Ordinal);
    }

    private static byte[] Flip(byte[] bytes, int index)
    {
        var copy = (byte[])bytes.Clone();
        copy[index] ^= 0x40;
        return copy;
    }
}
