namespace FineTunePlatform.LocalModels.Tests;

public sealed class PreferenceTests
{
    [Fact]
    public void Dpo_makes_the_preferred_answers_more_likely_than_the_rejected_ones_on_held_out_prompts()
    {
        static List<PreferenceExample> Pairs(int count, int seed)
        {
            var random = new Random(seed);
            return Enumerable.Range(0, count).Select(_ => new PreferenceExample(
                [new ChatTurn("user", $"order {random.Next(1000, 9999)} is late, what now?")],
                [new ChatTurn("assistant", "Sorry! I have escalated it.")],
                [new ChatTurn("assistant", "not my problem")])).ToList();
        }

        var train = Pairs(40, seed: 1);
        var heldOut = Pairs(20, seed: 2);
        var baseModel = TransformerModel.Create(ModelPresets.Nano, seed: 3);
        var losses = new List<double>();

        var tuned = LocalTrainer.TrainPreferences(baseModel, train,
            new TrainingOptions(Epochs: 4, BatchSize: 4, LearningRateMultiplier: 1, Seed: 3) { Beta = 0.1 },
            progress => losses.Add(progress.TrainLoss));

        // Per-token loss of each answer after its prompt: lower means more likely.
        static double Loss(TransformerModel model, List<PreferenceExample> pairs, bool preferred) => LocalTrainer.Evaluate(model,
            pairs.Select(pair => new SupervisedExample([.. pair.Prompt, .. preferred ? pair.Preferred : pair.NonPreferred])).ToList(), 4).Loss;
        var gapBefore = Loss(baseModel, heldOut, preferred: false) - Loss(baseModel, heldOut, preferred: true);
        var gapAfter = Loss(tuned, heldOut, preferred: false) - Loss(tuned, heldOut, preferred: true);

        Assert.True(gapAfter > gapBefore + 1, $"the rejected answer should become much less likely than the preferred one: gap {gapBefore:F3} -> {gapAfter:F3}");
        Assert.True(losses.TakeLast(5).Average() < losses.Take(5).Average(), $"DPO loss should fall: {losses.Take(5).Average():F3} -> {losses.TakeLast(5).Average():F3}");
        Assert.Equal(Math.Log(2), losses[0], 6); // the policy starts as the reference: margin 0
    }
}
