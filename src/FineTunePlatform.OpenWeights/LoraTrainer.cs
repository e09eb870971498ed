using System.Numerics.Tensors;

namespace FineTunePlatform.OpenWeights;

/// <summary>
/// A tokenized training sequence: Weights[i] is how much predicting Tokens[i] counts (0 for the prompt and every
/// token that is not the assistant's; the message's OpenAI `weight` otherwise). Weights[0] is never used.
/// </summary>
public sealed record TrainingSequence(int[] Tokens, float[] Weights);

/// <summary>A DPO pair: the same prompt with the preferred and the rejected answer (prompt tokens weigh 0).</summary>
public sealed record PreferencePair(TrainingSequence Chosen, TrainingSequence Rejected);

/// <summary>
/// How to train an adapter. The optimiser is AdamW as torch.optim.AdamW computes it (decoupled weight decay), after
/// global-norm gradient clipping as torch.nn.utils.clip_grad_norm_ does; the learning rate warms up linearly over
/// the first 10% of steps, then decays on a cosine to 10% (the built-in trainer's schedule).
/// </summary>
public sealed record LoraTrainingOptions(int Epochs, int BatchSize, double LearningRate, int Seed)
{
    public double Beta1 { get; init; } = 0.9;

    public double Beta2 { get; init; } = 0.999;

    public double Epsilon { get; init; } = 1e-8;

    public double WeightDecay { get; init; } = 0.0;

    public double MaxGradientNorm { get; init; } = 1.0;

    /// <summary>DPO's β.</summary>
    public double DpoBeta { get; init; } = 0.1;

    /// <summary>Sequences longer than this are cut (the model's own max_position_embeddings when null).</summary>
    public int? MaxLength { get; init; }
}

/// <summary>Everything needed to resume training exactly: the adapter, AdamW's moments and step, epochs done.</summary>
public sealed record LoraTrainingState(LoraAdapter Adapter, LoraAdapter FirstMoment, LoraAdapter SecondMoment, int Step, int EpochsCompleted);

/// <summary>What one optimisation step reported (Accuracy: token accuracy for SFT, the share of pairs ranked right for DPO).</summary>
public sealed record LoraTrainingProgress(int Step, int TotalSteps, int Epoch, double Loss, double Accuracy, long TrainedTokens);

/// <summary>AdamW on the adapter's parameters only, step for step what torch.optim.AdamW does after clip_grad_norm_.</summary>
public sealed class LoraAdamW
{
    public LoraAdamW(LoraAdapter parameters)
        : this(parameters.ZerosLike(), parameters.ZerosLike(), 0)
    {
    }

    public LoraAdamW(LoraAdapter firstMoment, LoraAdapter secondMoment, int steps)
    {
        FirstMoment = firstMoment;
        SecondMoment = secondMoment;
        Steps = steps;
    }

    public LoraAdapter FirstMoment { get; }

    public LoraAdapter SecondMoment { get; }

    public int Steps { get; private set; }

    /// <summary>Clips the gradients' global norm to options.MaxGradientNorm (in place), then applies one AdamW step. Returns the norm before clipping.</summary>
    public double Step(LoraAdapter parameters, LoraAdapter gradients, double learningRate, LoraTrainingOptions options)
    {
        var grads = gradients.Parameters().Select(parameter => parameter.Values).ToArray();
        double squares = 0;
        foreach (var g in grads)
        {
            var norm = TensorPrimitives.Norm(g);
            squares += (double)norm * norm;
        }

        var total = Math.Sqrt(squares);
        var clip = options.MaxGradientNorm / (total + 1e-6);
        if (clip < 1)
        {
            foreach (var g in grads)
            {
                TensorPrimitives.Multiply(g, (float)clip, g);
            }
        }

        Steps++;
        var lr = (float)learningRate;
        var (beta1, beta2, eps) = ((float)options.Beta1, (float)options.Beta2, (float)options.Epsilon);
        var decay = 1f - (lr * (float)options.WeightDecay);
        var correction1 = 1 - Math.Pow(options.Beta1, Steps);
        var stepSize = (float)(learningRate / correction1);
        var correction2Sqrt = (float)Math.Sqrt(1 - Math.Pow(options.Beta2, Steps));
        using var p = parameters.Parameters().GetEnumerator();
        using var m = FirstMoment.Parameters().GetEnumerator();
        using var v = SecondMoment.Parameters().GetEnumerator();
        var index = 0;
        while (p.MoveNext() && m.MoveNext() && v.MoveNext())
        {
            var (values, first, second, g) = (p.Current.Values, m.Current.Values, v.Current.Values, grads[index++]);
            for (var i = 0; i < values.Length; i++)
            {
                values[i] *= decay;
                first[i] = (beta1 * first[i]) + ((1 - beta1) * g[i]);
                second[i] = (beta2 * second[i]) + ((1 - beta2) * g[i] * g[i]);
                var denominator = (MathF.Sqrt(second[i]) / correction2Sqrt) + eps;
                values[i] -= stepSize * first[i] / denominator;
            }
        }

        return total;
    }
}

/// <summary>
/// LoRA training of a frozen base: supervised (weighted cross-entropy on the assistant's tokens) and DPO (the frozen
/// base with the starting adapter as reference). Deterministic for a seed: the data order comes from (seed, epoch),
/// dropout masks from (seed, step), and every kernel computes each value in a fixed order.
/// </summary>
public static class LoraTrainer
{
    public static LoraAdapter Train(LlamaModel model, LoraAdapter initial, IReadOnlyList<TrainingSequence> examples, LoraTrainingOptions options,
        Action<LoraTrainingProgress>? onStep = null, LoraTrainingState? resumeFrom = null, Action<LoraTrainingState>? onEpochEnd = null,
        CancellationToken cancellationToken = default)
    {
        var adapter = (resumeFrom?.Adapter ?? initial).Clone();
        var gradients = adapter.ZerosLike();
        var passes = new PassCache(model, adapter);
        var maxLength = options.MaxLength ?? model.Config.MaxPositionEmbeddings;
        return RunEpochs(adapter, examples, options, resumeFrom, onStep, onEpochEnd, (batch, step) =>
        {
            var packed = Pack(batch, maxLength);
            var pass = passes.Get(batch.Count, packed.Length);
            var result = pass.Forward(packed.Inputs, packed.Targets, packed.Weights, training: true, DropoutSeed(options, step));
            pass.BackwardMeanLoss(result, gradients);
            return (gradients, result.Loss, result.Counted == 0 ? 0 : (double)result.Correct / result.Counted, packed.Tokens);
        }, cancellationToken);
    }

    /// <summary>
    /// DPO: each step lowers −log σ(β·[(log π(chosen) − log π_ref(chosen)) − (log π(rejected) − log π_ref(rejected))])
    /// where π is base + the adapter being trained and π_ref is base + the starting adapter (frozen; the base alone
    /// when initial is a fresh adapter, whose B = 0 makes it equal to the base).
    /// </summary>
    public static LoraAdapter TrainPreferences(LlamaModel model, LoraAdapter initial, IReadOnlyList<PreferencePair> pairs, LoraTrainingOptions options,
        Action<LoraTrainingProgress>? onStep = null, LoraTrainingState? resumeFrom = null, Action<LoraTrainingState>? onEpochEnd = null,
        CancellationToken cancellationToken = default)
    {
        var reference = initial.Clone();
        var adapter = (resumeFrom?.Adapter ?? initial).Clone();
        var gradients = adapter.ZerosLike();
        var policyPasses = new PassCache(model, adapter);
        var referencePasses = new PassCache(model, reference);
        var maxLength = options.MaxLength ?? model.Config.MaxPositionEmbeddings;
        return RunEpochs(adapter, pairs, options, resumeFrom, onStep, onEpochEnd, (batch, step) =>
        {
            var rows = batch.SelectMany(pair => new[] { pair.Chosen, pair.Rejected }).ToList();
            var packed = Pack(rows, maxLength);
            var (loss, ranked) = PreferenceGradients(policyPasses.Get(rows.Count, packed.Length), referencePasses.Get(rows.Count, packed.Length), packed,
                options.DpoBeta, DropoutSeed(options, step), gradients);
            return (gradients, loss, ranked, packed.Tokens);
        }, cancellationToken);
    }

    /// <summary>
    /// One DPO batch (rows 2i and 2i+1 are pair i's chosen and rejected answers): the loss, the share of pairs whose
    /// margin is positive, and the policy adapter's gradients. dL/dlogits = g·(p − onehot) per answer token with
    /// g = ±β·σ(−margin)·w / pairs, so the supervised backward pass serves with signed row scales.
    /// </summary>
    public static (double Loss, double Ranked) PreferenceGradients(TrainingPass policy, TrainingPass reference, PackedBatch packed, double beta, long dropoutSeed, LoraAdapter gradients)
    {
        reference.Forward(packed.Inputs, packed.Targets, packed.Weights, training: false);
        var referenceSums = SequenceSums(reference, packed);
        policy.Forward(packed.Inputs, packed.Targets, packed.Weights, training: true, dropoutSeed);
        var policySums = SequenceSums(policy, packed);
        var pairs = packed.Batch / 2;
        var scale = new float[packed.Inputs.Length];
        double loss = 0;
        var ranked = 0;
        for (var i = 0; i < pairs; i++)
        {
            var margin = beta * ((policySums[2 * i] - referenceSums[2 * i]) - (policySums[(2 * i) + 1] - referenceSums[(2 * i) + 1]));
            // softplus(−m), stable for large |m|.
            loss += Math.Max(-margin, 0) + Math.Log(1 + Math.Exp(-Math.Abs(margin)));
            ranked += margin > 0 ? 1 : 0;
            var g = beta / (1 + Math.Exp(margin)) / pairs;
            for (var t = 0; t < packed.Length; t++)
            {
                scale[(2 * i * packed.Length) + t] = (float)(g * packed.Weights[(2 * i * packed.Length) + t]);
                scale[(((2 * i) + 1) * packed.Length) + t] = (float)(-g * packed.Weights[(((2 * i) + 1) * packed.Length) + t]);
            }
        }

        policy.Backward(scale, gradients);
        return (loss / pairs, (double)ranked / pairs);
    }

    /// <summary>Loss and token accuracy of base + adapter on sequences, without changing anything.</summary>
    public static (double Loss, double TokenAccuracy) Evaluate(LlamaModel model, LoraAdapter? adapter, IReadOnlyList<TrainingSequence> examples, int batchSize)
    {
        double weighted = 0, weights = 0;
        long correct = 0, counted = 0;
        var passes = new PassCache(model, adapter);
        for (var start = 0; start < examples.Count; start += batchSize)
        {
            var batch = examples.Skip(start).Take(batchSize).ToList();
            var packed = Pack(batch, model.Config.MaxPositionEmbeddings);
            var result = passes.Get(batch.Count, packed.Length).Forward(packed.Inputs, packed.Targets, packed.Weights, training: false);
            weighted += result.Loss * result.WeightSum;
            weights += result.WeightSum;
            correct += result.Correct;
            counted += result.Counted;
        }

        return (weights == 0 ? 0 : weighted / weights, counted == 0 ? 0 : (double)correct / counted);
    }

    /// <summary>A batch laid out for a pass: inputs/targets/weights [B·T], right-padded with weight 0.</summary>
    public sealed record PackedBatch(int Batch, int Length, int[] Inputs, int[] Targets, float[] Weights, long Tokens);

    /// <summary>
    /// Inputs are tokens[0..L−1], targets tokens[1..L] with their weights, padded to the longest in the batch. Right
    /// padding needs no attention mask: causal attention never lets a real token see the padding after it.
    /// </summary>
    public static PackedBatch Pack(IReadOnlyList<TrainingSequence> batch, int maxLength)
    {
        var length = Math.Max(1, batch.Max(sequence => Math.Min(sequence.Tokens.Length, maxLength + 1) - 1));
        var inputs = new int[batch.Count * length];
        var targets = new int[batch.Count * length];
        var weights = new float[batch.Count * length];
        long tokens = 0;
        for (var b = 0; b < batch.Count; b++)
        {
            var sequence = batch[b];
            var used = Math.Min(sequence.Tokens.Length - 1, length);
            tokens += Math.Max(used, 0);
            for (var t = 0; t < used; t++)
            {
                var i = (b * length) + t;
                inputs[i] = sequence.Tokens[t];
                targets[i] = sequence.Tokens[t + 1];
                weights[i] = sequence.Weights[t + 1];
            }
        }

        return new PackedBatch(batch.Count, length, inputs, targets, weights, tokens);
    }

    private static double[] SequenceSums(TrainingPass pass, PackedBatch packed)
    {
        var sums = new double[packed.Batch];
        var logProbabilities = pass.TokenLogProbabilities;
        for (var i = 0; i < packed.Inputs.Length; i++)
        {
            sums[i / packed.Length] += packed.Weights[i] * (double)logProbabilities[i];
        }

        return sums;
    }

    private static long DropoutSeed(LoraTrainingOptions options, int step) => ((long)options.Seed * 1_000_003L) + step;

    /// <summary>Training passes by batch shape; only the latest two are kept (each holds a batch's activations).</summary>
    private sealed class PassCache(LlamaModel model, LoraAdapter? adapter)
    {
        private readonly List<TrainingPass> _passes = [];

        public TrainingPass Get(int batch, int length)
        {
            var pass = _passes.FirstOrDefault(candidate => candidate.Batch == batch && candidate.Length == length);
            if (pass is null)
            {
                if (_passes.Count == 2)
                {
                    _passes.RemoveAt(0);
                }

                pass = new TrainingPass(model, adapter, batch, length);
                _passes.Add(pass);
            }

            return pass;
        }
    }

    private static LoraAdapter RunEpochs<TItem>(LoraAdapter adapter, IReadOnlyList<TItem> items, LoraTrainingOptions options, LoraTrainingState? resumeFrom,
        Action<LoraTrainingProgress>? onStep, Action<LoraTrainingState>? onEpochEnd, Func<List<TItem>, int, (LoraAdapter Gradients, double Loss, double Accuracy, long Tokens)> computeGradients,
        CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(options.Epochs, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(options.BatchSize, 1);
        if (items.Count == 0)
        {
            throw new ArgumentException("There is nothing to train on.", nameof(items));
        }

        var batchesPerEpoch = (items.Count + options.BatchSize - 1) / options.BatchSize;
        var totalSteps = batchesPerEpoch * options.Epochs;
        var optimizer = resumeFrom is null ? new LoraAdamW(adapter) : new LoraAdamW(resumeFrom.FirstMoment.Clone(), resumeFrom.SecondMoment.Clone(), resumeFrom.Step);
        var step = resumeFrom?.Step ?? 0;
        long trained = 0;
        for (var epoch = (resumeFrom?.EpochsCompleted ?? 0) + 1; epoch <= options.Epochs; epoch++)
        {
            var order = Enumerable.Range(0, items.Count).ToArray();
            new Random(unchecked((options.Seed * 1_000_003) + epoch)).Shuffle(order);
            for (var start = 0; start < order.Length; start += options.BatchSize)
            {
                cancellationToken.ThrowIfCancellationRequested();
                var batch = order.Skip(start).Take(options.BatchSize).Select(index => items[index]).ToList();
                step++;
                var result = computeGradients(batch, step);
                optimizer.Step(adapter, result.Gradients, LearningRate(options, step, totalSteps), options);
                trained += result.Tokens;
                onStep?.Invoke(new LoraTrainingProgress(step, totalSteps, epoch, result.Loss, result.Accuracy, trained));
            }

            onEpochEnd?.Invoke(new LoraTrainingState(adapter.Clone(), optimizer.FirstMoment.Clone(), optimizer.SecondMoment.Clone(), step, epoch));
        }

        return adapter;
    }

    public static double LearningRate(LoraTrainingOptions options, int step, int totalSteps)
    {
        var warmup = Math.Max(1, totalSteps / 10);
        if (step <= warmup)
        {
            return options.LearningRate * step / warmup;
        }

        var progress = (double)(step - warmup) / Math.Max(1, totalSteps - warmup);
        return options.LearningRate * (0.1 + (0.9 * 0.5 * (1 + Math.Cos(Math.PI * progress))));
    }
}
