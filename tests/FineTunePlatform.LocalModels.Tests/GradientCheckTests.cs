namespace FineTunePlatform.LocalModels.Tests;

/// <summary>
/// Every parameter tensor's analytic gradient against central finite differences of the loss. The forward runs in
/// float32, so differences use a step of 1e-2 on a tiny model and the comparison allows 5% relative error (plus 2e-4
/// absolute for near-zero gradients): a wrong backward is off by far more (sign, factor, missing term).
/// </summary>
public sealed class GradientCheckTests
{
    private static readonly ModelPreset Tiny = new("test-tiny", ContextLength: 8, Layers: 2, Heads: 2, Channels: 8);
    private const int Batch = 2;
    private const int Length = 6;

    /// <summary>
    /// A tiny model with weights pushed larger than initialisation (so layer norm and attention are far from their
    /// linear regime), a random batch with some positions weighted 0, and the random source for further sampling.
    /// </summary>
    private static (TransformerModel Model, Random Random, int[] Tokens, int[] Targets, float[] Weights) Setup(int modelSeed, int dataSeed)
    {
        var model = TransformerModel.Create(Tiny, seed: modelSeed);
        var random = new Random(dataSeed);
        for (var i = 0; i < model.Parameters.Length; i++)
        {
            model.Parameters[i] += (float)((random.NextDouble() - 0.5) * 0.2);
        }

        var tokens = Enumerable.Range(0, Batch * Length).Select(_ => random.Next(Tiny.VocabularySize)).ToArray();
        var targets = Enumerable.Range(0, Batch * Length).Select(_ => random.Next(Tiny.VocabularySize)).ToArray();
        var weights = Enumerable.Range(0, Batch * Length).Select(i => i % 3 == 0 ? 0f : 1f).ToArray();
        return (model, random, tokens, targets, weights);
    }

    [Fact]
    public void Backward_matches_finite_differences_for_every_tensor()
    {
        var (model, random, tokens, targets, weights) = Setup(modelSeed: 7, dataSeed: 3);
        var pass = new ForwardPass(model, Batch, Length);
        pass.Forward(tokens, targets, weights);
        pass.Backward(tokens);
        var analytic = (float[])pass.Gradients.Clone();

        var layout = model.Layout;
        var tensors = new List<(string Name, int Offset, int Count)>
        {
            ("token embedding (tied output)", layout.TokenEmbedding, Tiny.VocabularySize * Tiny.Channels),
            ("position embedding", layout.PositionEmbedding, Tiny.ContextLength * Tiny.Channels),
            ("final norm weight", layout.FinalNormWeight, Tiny.Channels),
            ("final norm bias", layout.FinalNormBias, Tiny.Channels),
        };
        foreach (var (layer, index) in layout.Layers.Select((layer, index) => (layer, index)))
        {
            var c = Tiny.Channels;
            tensors.AddRange(
            [
                ($"layer {index} norm1 weight", layer.Norm1Weight, c), ($"layer {index} norm1 bias", layer.Norm1Bias, c),
                ($"layer {index} qkv weight", layer.QkvWeight, 3 * c * c), ($"layer {index} qkv bias", layer.QkvBias, 3 * c),
                ($"layer {index} attention projection", layer.ProjWeight, c * c), ($"layer {index} attention projection bias", layer.ProjBias, c),
                ($"layer {index} norm2 weight", layer.Norm2Weight, c), ($"layer {index} norm2 bias", layer.Norm2Bias, c),
                ($"layer {index} mlp weight", layer.FcWeight, 4 * c * c), ($"layer {index} mlp bias", layer.FcBias, 4 * c),
                ($"layer {index} mlp projection", layer.FcProjWeight, 4 * c * c), ($"layer {index} mlp projection bias", layer.FcProjBias, c),
            ]);
        }

        Assert.Equal(model.Parameters.Length, tensors.Sum(tensor => tensor.Count));
        const float step = 1e-2f;
        var failures = new List<string>();
        foreach (var (name, offset, count) in tensors)
        {
            // The tokens used touch only some embedding rows; sample indices with non-trivial gradients first.
            var indices = Enumerable.Range(offset, count).OrderByDescending(i => Math.Abs(analytic[i])).Take(6)
                .Concat(Enumerable.Range(0, 4).Select(_ => offset + random.Next(count))).Distinct();
            foreach (var i in indices)
            {
                var original = model.Parameters[i];
                model.Parameters[i] = original + step;
                var plus = pass.Forward(tokens, targets, weights).Loss;
                model.Parameters[i] = original - step;
                var minus = pass.Forward(tokens, targets, weights).Loss;
                model.Parameters[i] = original;
                var numeric = (plus - minus) / (2 * step);
                if (Math.Abs(numeric - analytic[i]) > 2e-4 + (0.05 * Math.Max(Math.Abs(numeric), Math.Abs(analytic[i]))))
                {
                    failures.Add($"{name}[{i - offset}]: analytic {analytic[i]:G5}, numeric {numeric:G5}");
                }
            }
        }

        Assert.True(failures.Count == 0, string.Join("\n", failures));
    }

    [Fact]
    public void Backward_matches_float64_finite_differences_of_an_independent_reference_for_every_parameter()
    {
        var (model, _, tokens, targets, weights) = Setup(modelSeed: 11, dataSeed: 5);
        var pass = new ForwardPass(model, Batch, Length);
        var float32Loss = pass.Forward(tokens, targets, weights).Loss;
        pass.Backward(tokens);

        var parameters = model.Parameters.Select(value => (double)value).ToArray();
        double Loss() => Float64Reference.Loss(parameters, Tiny, model.Layout, Batch, Length, tokens, targets, weights);

        // The reference is the same function: the float32 forward agrees with it to float32 precision.
        Assert.Equal(Loss(), float32Loss, 4);

        const double step = 1e-5;
        var failures = new List<string>();
        for (var i = 0; i < parameters.Length; i++)
        {
            var original = parameters[i];
            parameters[i] = original + step;
            var plus = Loss();
            parameters[i] = original - step;
            var minus = Loss();
            parameters[i] = original;
            var numeric = (plus - minus) / (2 * step);
            var analytic = pass.Gradients[i];
            if (Math.Abs(numeric - analytic) > 1e-5 + (1e-3 * Math.Abs(numeric)))
            {
                failures.Add($"parameter {i}: analytic {analytic:G6}, float64 numeric {numeric:G6}");
            }
        }

        Assert.True(failures.Count == 0, $"{failures.Count} of {parameters.Length} parameters differ:\n" + string.Join("\n", failures.Take(20)));
    }

    [Fact]
    public void A_sequence_started_at_an_offset_reads_and_trains_the_position_rows_from_there()
    {
        // Offsetting a sequence by k must equal a model whose position rows 0.. are its rows k..: the same loss,
        // and the gradient of row k + i equal to that model's gradient of row i (and nothing for rows before k).
        var (model, _, tokens, targets, weights) = Setup(modelSeed: 4, dataSeed: 9);
        var (c, k, length) = (Tiny.Channels, 2, Length);
        var shifted = model.Clone();
        var positions = model.Layout.PositionEmbedding;
        Array.Copy(model.Parameters, positions + (k * c), shifted.Parameters, positions, length * c);

        var offset = new ForwardPass(model, Batch, length) { PositionOffsets = [k, k] };
        var loss = offset.Forward(tokens, targets, weights).Loss;
        offset.Backward(tokens);
        var reference = new ForwardPass(shifted, Batch, length);
        var expected = reference.Forward(tokens, targets, weights).Loss;
        reference.Backward(tokens);

        Assert.Equal(expected, loss, 6);
        Assert.All(offset.Gradients.AsSpan(positions, k * c).ToArray(), gradient => Assert.Equal(0f, gradient));
        var gradients = offset.Gradients.AsSpan(positions + (k * c), length * c).ToArray();
        var referenceGradients = reference.Gradients.AsSpan(positions, length * c).ToArray();
        Assert.Equal(referenceGradients, gradients);
        Assert.Throws<ArgumentOutOfRangeException>(() => new ForwardPass(model, Batch, length) { PositionOffsets = [0, Tiny.ContextLength - length + 1] });
    }

    [Fact]
    public void Positions_with_weight_zero_contribute_nothing()
    {
        var model = TransformerModel.Create(Tiny, seed: 1);
        var tokens = new[] { 1, 2, 3, 4, 5, 6 };
        var targets = new[] { 2, 3, 4, 5, 6, 7 };
        var pass = new ForwardPass(model, 1, 6);

        var all = pass.Forward(tokens, targets, [1, 1, 1, 1, 1, 1]).Loss;
        var masked = pass.Forward(tokens, targets, [1, 1, 1, 0, 0, 0]).Loss;
        var changedMaskedTargets = pass.Forward(tokens, [2, 3, 4, 9, 9, 9], [1, 1, 1, 0, 0, 0]).Loss;

        Assert.NotEqual(all, masked);
        Assert.Equal(masked, changedMaskedTargets);
    }

    [Fact]
    public void Chat_template_learns_only_assistant_tokens_and_honours_weight_zero()
    {
        var (tokens, weights) = ChatTokenizer.ByteLevel.Render(
        [
            new ChatTurn("system", "s"),
            new ChatTurn("user", "hi"),
            new ChatTurn("assistant", "no", Weight: 0),
            new ChatTurn("user", "again"),
            new ChatTurn("assistant", "ok"),
        ]);

        Assert.Equal(ChatTokens.System, tokens[0]);
        var learned = tokens.Zip(weights).Where(pair => pair.Second > 0).Select(pair => pair.First).ToArray();
        Assert.Equal(new[] { (int)'o', 'k', ChatTokens.EndOfTurn }, learned);
    }
}
