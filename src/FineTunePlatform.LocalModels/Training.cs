using System.Numerics.Tensors;

namespace FineTunePlatform.LocalModels;

/// <summary>A supervised chat example: the conversation, whose assistant messages are learned.</summary>
public sealed record SupervisedExample(IReadOnlyList<ChatTurn> Messages);

/// <summary>A DPO preference example: a prompt conversation and two answers to it, the preferred one first.</summary>
public sealed record PreferenceExample(IReadOnlyList<ChatTurn> Prompt, IReadOnlyList<ChatTurn> Preferred, IReadOnlyList<ChatTurn> NonPreferred);

/// <summary>
/// How to train: epochs, batch size, the learning-rate multiplier on the preset's base rate, and the seed that makes
/// initialisation and data order reproducible.
/// </summary>
public sealed record TrainingOptions(int Epochs, int BatchSize, double LearningRateMultiplier, int Seed)
{
    /// <summary>AdamW's base learning rate before the multiplier; warmup over the first 10% of steps, cosine to 10%.</summary>
    public double BaseLearningRate { get; init; } = 3e-3;

    public double WeightDecay { get; init; } = 0.01;

    public double MaxGradientNorm { get; init; } = 1.0;

    /// <summary>DPO's β: how far the tuned model may move from the reference to honour a preference.</summary>
    public double Beta { get; init; } = 0.1;

    /// <summary>
    /// Supervised training starts each sequence at a random position between 0 and this (as far as the context
    /// allows), drawn from the seed and the step. With learned absolute position embeddings, a model fine-tuned on
    /// short examples otherwise ties its answer to where the tokens sat, and a longer message than the training
    /// ones (its answer further along) is read worse; the pre-trained base saw conversations start anywhere in a
    /// row. Measured on the quality bench (docs/local-models.md). Pre-training rows fill the context, so they are
    /// never shifted; DPO does not shift. 0 turns it off.
    /// </summary>
    public int PositionJitter { get; init; } = 32;
}

/// <summary>
/// What one optimisation step reported. `Model` is the live model being trained: read it during the callback (to
/// evaluate on a validation set), never keep or change it.
/// </summary>
public sealed record TrainingProgress(int Step, int TotalSteps, int Epoch, double TrainLoss, double TrainTokenAccuracy, long TrainedTokens, TransformerModel Model);

/// <summary>
/// Trains a model on supervised chat examples with AdamW, warmup and cosine decay, and gradient clipping. Batches
/// pad sequences to the longest in the batch with zero loss weight. Deterministic for a seed.
/// </summary>
public sealed class LocalTrainer
{
    /// <summary>
    /// Trains from `initial` (a fresh preset or a fine-tuned model), or continues `resumeFrom` to exactly the weights an
    /// uninterrupted run reaches. `onEpochEnd` receives a checkpoint after every epoch.
    /// </summary>
    public static TransformerModel Train(TransformerModel initial, IReadOnlyList<SupervisedExample> examples, TrainingOptions options,
        Action<TrainingProgress>? onStep = null, TrainingCheckpoint? resumeFrom = null, Action<TrainingCheckpoint>? onEpochEnd = null,
        CancellationToken cancellationToken = default)
    {
        var model = (resumeFrom?.Model ?? initial).Clone();
        var rendered = Render(examples, model.Preset);
        if (rendered.Count == 0)
        {
            var fit = ContextWindow.Check(model.Preset, examples);
            throw new ArgumentException($"None of the {examples.Count} examples has an assistant token to learn within {model.Preset.Name}'s context of {model.Preset.ContextLength} tokens ({fit.WithoutLearnedTokens} have none left).", nameof(examples));
        }

        return RunSequences(model, rendered, options, onStep, resumeFrom, onEpochEnd, cancellationToken);
    }

    /// <summary>
    /// Trains on token sequences already rendered and fitted to the context (tokens, and the loss weight of predicting
    /// each token from the ones before it): the pre-training tool's entry point. Same loop as <see cref="Train"/>.
    /// </summary>
    public static TransformerModel TrainSequences(TransformerModel initial, IReadOnlyList<(int[] Tokens, float[] Weights)> sequences, TrainingOptions options,
        Action<TrainingProgress>? onStep = null, TrainingCheckpoint? resumeFrom = null, Action<TrainingCheckpoint>? onEpochEnd = null,
        CancellationToken cancellationToken = default) =>
        RunSequences((resumeFrom?.Model ?? initial).Clone(), sequences, options, onStep, resumeFrom, onEpochEnd, cancellationToken);

    /// <summary>Trains `model` itself (callers pass a clone) on fitted sequences.</summary>
    private static TransformerModel RunSequences(TransformerModel model, IReadOnlyList<(int[] Tokens, float[] Weights)> rendered, TrainingOptions options,
        Action<TrainingProgress>? onStep, TrainingCheckpoint? resumeFrom, Action<TrainingCheckpoint>? onEpochEnd, CancellationToken cancellationToken)
    {
        if (rendered.Any(sequence => sequence.Tokens.Length > model.Preset.ContextLength + 1 || sequence.Tokens.Length != sequence.Weights.Length))
        {
            throw new ArgumentException($"Every sequence must have one weight per token and at most {model.Preset.ContextLength + 1} tokens.", nameof(rendered));
        }

        var passes = new Dictionary<(int, int), ForwardPass>();
        return RunEpochs(model, rendered, options, resumeFrom, onStep, onEpochEnd, (batch, step) =>
        {
            var length = batch.Max(sequence => sequence.Tokens.Length) - 1;
            if (!passes.TryGetValue((batch.Count, length), out var pass))
            {
                passes[(batch.Count, length)] = pass = new ForwardPass(model, batch.Count, length);
            }

            // From the seed and the step alone, so a resumed run draws the same offsets.
            var room = Math.Min(options.PositionJitter, model.Preset.ContextLength - length);
            var jitter = new Random(unchecked((options.Seed * 7_919) + step));
            pass.PositionOffsets = room > 0 ? batch.Select(_ => jitter.Next(room + 1)).ToArray() : null;

            var (inputs, targets, weights) = Pack(batch, length);
            var result = pass.Forward(inputs, targets, weights);
            pass.Backward(inputs);
            return new BatchResult(pass.Gradients, result.Loss, result.Counted == 0 ? 0 : (double)result.Correct / result.Counted, batch.Sum(sequence => sequence.Tokens.Length - 1));
        }, cancellationToken);
    }

    /// <summary>
    /// Direct preference optimisation: the starting weights are the frozen reference, and each step lowers
    /// -log σ(β·[(log π(preferred) - log π_ref(preferred)) - (log π(rejected) - log π_ref(rejected))]) over the answers'
    /// assistant tokens (the prompt is context only). Progress reports the DPO loss and the share of pairs whose
    /// preferred answer the model already ranks higher. Same schedule, seed, checkpoints and resume as Train.
    /// </summary>
    public static TransformerModel TrainPreferences(TransformerModel initial, IReadOnlyList<PreferenceExample> examples, TrainingOptions options,
        Action<TrainingProgress>? onStep = null, TrainingCheckpoint? resumeFrom = null, Action<TrainingCheckpoint>? onEpochEnd = null,
        CancellationToken cancellationToken = default)
    {
        var reference = initial.Clone();
        var model = (resumeFrom?.Model ?? initial).Clone();
        List<(int[] Tokens, float[] Weights)> Answer(PreferenceExample example, IReadOnlyList<ChatTurn> answer) =>
            Render([new SupervisedExample([.. example.Prompt.Select(turn => turn with { Weight = 0 }), .. answer])], model.Preset);
        var pairs = examples.Select(example => (Preferred: Answer(example, example.Preferred), Rejected: Answer(example, example.NonPreferred)))
            .Where(pair => pair.Preferred.Count == 1 && pair.Rejected.Count == 1)
            .Select(pair => (Preferred: pair.Preferred[0], Rejected: pair.Rejected[0]))
            .ToList();
        var passes = new Dictionary<(int, int), (ForwardPass Policy, ForwardPass Reference)>();
        return RunEpochs(model, pairs, options, resumeFrom, onStep, onEpochEnd, (chosen, _) =>
        {
            var rows = chosen.Select(pair => pair.Preferred).Concat(chosen.Select(pair => pair.Rejected)).ToList();
            var length = rows.Max(sequence => sequence.Tokens.Length) - 1;
            if (!passes.TryGetValue((rows.Count, length), out var pass))
            {
                passes[(rows.Count, length)] = pass = (new ForwardPass(model, rows.Count, length), new ForwardPass(reference, rows.Count, length));
            }

            var (inputs, targets, weights) = Pack(rows, length);
            pass.Reference.Forward(inputs, targets, weights);
            var referenceLogProbabilities = pass.Reference.SequenceLogProbabilities();
            pass.Policy.Forward(inputs, targets, weights);
            var logProbabilities = pass.Policy.SequenceLogProbabilities();

            // dL/dlogits = (p - onehot)·g with g = ±β·σ(-margin)/B on each answer's learned tokens.
            var gradientWeights = new float[weights.Length];
            double loss = 0;
            var ranked = 0;
            var b = chosen.Count;
            for (var i = 0; i < b; i++)
            {
                var margin = options.Beta * ((logProbabilities[i] - referenceLogProbabilities[i]) - (logProbabilities[b + i] - referenceLogProbabilities[b + i]));
                loss += Math.Log(1 + Math.Exp(-margin));
                ranked += margin > 0 ? 1 : 0;
                var scale = (float)(options.Beta / (1 + Math.Exp(margin)) / b);
                for (var t = 0; t < length; t++)
                {
                    gradientWeights[(i * length) + t] = weights[(i * length) + t] * scale;
                    gradientWeights[((b + i) * length) + t] = -weights[((b + i) * length) + t] * scale;
                }
            }

            pass.Policy.Backward(inputs, gradientWeights, 1);
            return new BatchResult(pass.Policy.Gradients, loss / b, (double)ranked / b, rows.Sum(sequence => sequence.Tokens.Length - 1));
        }, cancellationToken);
    }

    /// <summary>What one batch's forward and backward produced: the gradients to apply and what to report.</summary>
    private readonly record struct BatchResult(float[] Gradients, double Loss, double Accuracy, long Tokens);

    /// <summary>
    /// The loop every objective shares: epochs over `items` in an order that comes from the seed and the epoch alone (so
    /// a resumed run replays it exactly), AdamW with warmup and cosine decay, progress after every step and a
    /// checkpoint after every epoch. `computeGradients` does one batch's forward and backward on `model` (and gets the
    /// step it is for, counted from 1).
    /// </summary>
    private static TransformerModel RunEpochs<TItem>(TransformerModel model, IReadOnlyList<TItem> items, TrainingOptions options, TrainingCheckpoint? resumeFrom,
        Action<TrainingProgress>? onStep, Action<TrainingCheckpoint>? onEpochEnd, Func<List<TItem>, int, BatchResult> computeGradients, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(options.Epochs, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(options.BatchSize, 1);
        var batchesPerEpoch = (items.Count + options.BatchSize - 1) / options.BatchSize;
        var totalSteps = batchesPerEpoch * options.Epochs;
        var optimizer = resumeFrom?.FirstMoment is null
            ? new AdamW(model.Parameters.Length)
            : new AdamW(resumeFrom.FirstMoment, resumeFrom.SecondMoment!, resumeFrom.Step);
        long trainedTokens = 0;
        var step = resumeFrom?.Step ?? 0;
        for (var epoch = (resumeFrom?.EpochsCompleted ?? 0) + 1; epoch <= options.Epochs; epoch++)
        {
            var order = Enumerable.Range(0, items.Count).ToArray();
            new Random(unchecked((options.Seed * 1_000_003) + epoch)).Shuffle(order);
            for (var start = 0; start < order.Length; start += options.BatchSize)
            {
                cancellationToken.ThrowIfCancellationRequested();
                step++;
                var result = computeGradients(order.Skip(start).Take(options.BatchSize).Select(index => items[index]).ToList(), step);
                optimizer.Step(model.Parameters, result.Gradients, LearningRate(options, step, totalSteps), options);
                trainedTokens += result.Tokens;
                onStep?.Invoke(new TrainingProgress(step, totalSteps, epoch, result.Loss, result.Accuracy, trainedTokens, model));
            }

            onEpochEnd?.Invoke(new TrainingCheckpoint(model.Clone(), epoch, step, (float[])optimizer.FirstMoment.Clone(), (float[])optimizer.SecondMoment.Clone()));
        }

        return model;
    }

    /// <summary>
    /// Loss and mean token accuracy of `model` on `examples` (the validation file), over the tokens training would
    /// learn, without changing the model.
    /// </summary>
    public static (double Loss, double TokenAccuracy) Evaluate(TransformerModel model, IReadOnlyList<SupervisedExample> examples, int batchSize)
    {
        var rendered = Render(examples, model.Preset);
        double weightedLoss = 0, weights = 0;
        long correct = 0, counted = 0;
        for (var start = 0; start < rendered.Count; start += batchSize)
        {
            var batch = rendered.Skip(start).Take(batchSize).ToList();
            var length = batch.Max(sequence => sequence.Tokens.Length) - 1;
            var (inputs, targets, lossWeights) = Pack(batch, length);
            var result = new ForwardPass(model, batch.Count, length).Forward(inputs, targets, lossWeights);
            weightedLoss += result.Loss * result.WeightSum;
            weights += result.WeightSum;
            correct += result.Correct;
            counted += result.Counted;
        }

        return (weights == 0 ? 0 : weightedLoss / weights, counted == 0 ? 0 : (double)correct / counted);
    }

    /// <summary>
    /// The examples as the model trains on them: rendered, fitted to the context (<see cref="ContextWindow.Fit"/>), and
    /// without those left with nothing to learn (they would cost a forward pass for no gradient).
    /// </summary>
    private static List<(int[] Tokens, float[] Weights)> Render(IReadOnlyList<SupervisedExample> examples, ModelPreset preset) =>
        examples.Select(example => ContextWindow.Fit(preset.Tokenizer.Render(example.Messages), preset.ContextLength))
            .Where(pair => pair.Tokens.Length > 1 && pair.Weights.Skip(1).Any(weight => weight != 0))
            .ToList();

    private static (int[] Inputs, int[] Targets, float[] Weights) Pack(List<(int[] Tokens, float[] Weights)> batch, int length)
    {
        var inputs = new int[batch.Count * length];
        var targets = new int[batch.Count * length];
        var weights = new float[batch.Count * length];
        for (var b = 0; b < batch.Count; b++)
        {
            var (tokens, lossWeights) = batch[b];
            for (var t = 0; t < length; t++)
            {
                var i = (b * length) + t;
                if (t + 1 < tokens.Length)
                {
                    inputs[i] = tokens[t];
                    targets[i] = tokens[t + 1];
                    weights[i] = lossWeights[t + 1];
                }
                else
                {
                    inputs[i] = ChatTokens.EndOfTurn;
                }
            }
        }

        return (inputs, targets, weights);
    }

    private static double LearningRate(TrainingOptions options, int step, int totalSteps)
    {
        var peak = options.BaseLearningRate * options.LearningRateMultiplier;
        var warmup = Math.Max(1, totalSteps / 10);
        if (step <= warmup)
        {
            return peak * step / warmup;
        }

        var progress = (double)(step - warmup) / Math.Max(1, totalSteps - warmup);
        return peak * (0.1 + (0.9 * 0.5 * (1 + Math.Cos(Math.PI * progress))));
    }
}

/// <summary>AdamW with global-norm gradient clipping; its moments live beside the parameters.</summary>
internal sealed class AdamW(float[] firstMoment, float[] secondMoment, int steps)
{
    private const float Beta1 = 0.9f;
    private const float Beta2 = 0.95f;
    private const float Epsilon = 1e-8f;

    public AdamW(int size)
        : this(new float[size], new float[size], 0)
    {
    }

    public float[] FirstMoment { get; } = (float[])firstMoment.Clone();

    public float[] SecondMoment { get; } = (float[])secondMoment.Clone();

    public int Steps { get; private set; } = steps;

    public void Step(float[] parameters, float[] gradients, double learningRate, TrainingOptions options)
    {
        Steps++;
        var norm = MathF.Sqrt(TensorPrimitives.SumOfSquares(gradients));
        var clip = norm > options.MaxGradientNorm ? (float)(options.MaxGradientNorm / norm) : 1f;
        var lr = (float)learningRate;
        var decay = (float)options.WeightDecay;
        var correction1 = 1f - MathF.Pow(Beta1, Steps);
        var correction2 = 1f - MathF.Pow(Beta2, Steps);
        for (var i = 0; i < parameters.Length; i++)
        {
            var g = gradients[i] * clip;
            FirstMoment[i] = (Beta1 * FirstMoment[i]) + ((1 - Beta1) * g);
            SecondMoment[i] = (Beta2 * SecondMoment[i]) + ((1 - Beta2) * g * g);
            var mHat = FirstMoment[i] / correction1;
            var vHat = SecondMoment[i] / correction2;
            parameters[i] -= lr * ((mHat / (MathF.Sqrt(vHat) + Epsilon)) + (decay * parameters[i]));
        }
    }
}
