using System.Numerics.Tensors;
using Gemm = FineTunePlatform.LocalModels.Gemm;

namespace FineTunePlatform.OpenWeights;

/// <summary>What one forward pass over a batch reported.</summary>
/// <param name="Loss">Σ w·CE / Σ w over the weighted positions (0 when none is weighted).</param>
/// <param name="WeightSum">Σ w.</param>
/// <param name="Correct">Weighted positions whose argmax is the target.</param>
/// <param name="Counted">Positions with a non-zero weight.</param>
public readonly record struct ForwardResult(double Loss, double WeightSum, int Correct, int Counted);

/// <summary>
/// The forward and backward pass of a base model with a LoRA adapter over one batch shape (B sequences of T tokens),
/// with the activations the backward pass needs kept per layer. Allocated once per shape and reused step after step.
/// The base is frozen, so backward computes input gradients (dx = dy·W) and the adapter's gradients only; the output
/// head is fused with the loss (after llm.c): logits exist only for a chunk of weighted rows at a time, and their
/// gradient (p − onehot) is pushed through the head right away.
/// </summary>
public sealed class TrainingPass
{
    /// <summary>Rows of logits in flight at once: [chunk, vocab] floats, about 25 MB for a 49k vocabulary.</summary>
    private const int HeadChunk = 128;

    private readonly LlamaModel _model;
    private readonly LoraAdapter? _adapter;
    private readonly int _b, _t, _n;
    private readonly Layer[] _layers;
    private readonly float[][] _residual;
    private readonly float[] _finalNorm, _finalRstd, _dFinalNormUnit;
    private readonly float[] _rowLogProbability;
    private readonly int[] _rowArgmax;
    private readonly float[] _cos, _sin;
    // Scratch shared by the layers in turn.
    private readonly float[] _xDropped, _du, _dResidual, _dNorm, _dAttention, _dq, _dk, _dv, _dProbabilities, _dGate, _dUp, _dHidden, _hidden, _tmp;
    private readonly float[] _headIn, _headLogits, _headDIn;
    private int[] _tokens = [], _targets = [];
    private float[] _weights = [];
    private long _dropoutSeed;
    private bool _training;

    private sealed class Layer
    {
        public required float[] Rstd1, Norm1, Q, K, V, Probabilities, AttentionOut, Middle, Rstd2, Norm2, Gate, Up;

        /// <summary>u = dropout(x)·Aᵀ per adapted module [n, r], by <see cref="LinearModule"/>.</summary>
        public required float[]?[] U;
    }

    public TrainingPass(LlamaModel model, LoraAdapter? adapter, int batch, int length)
    {
        var config = model.Config;
        if (length > config.MaxPositionEmbeddings)
        {
            throw new ArgumentException($"Sequences of {length} tokens exceed the model's {config.MaxPositionEmbeddings} positions.", nameof(length));
        }

        if (adapter is not null && (adapter.Model.Layers != config.Layers || adapter.Model.HiddenSize != config.HiddenSize))
        {
            throw new ArgumentException("The adapter was made for a model of another shape.", nameof(adapter));
        }

        _model = model;
        _adapter = adapter;
        (_b, _t, _n) = (batch, length, batch * length);
        var (c, qd, kvd, inter) = (config.HiddenSize, config.QueryDim, config.KeyValueDim, config.IntermediateSize);
        var rank = adapter?.Config.Rank ?? 0;
        _layers = Enumerable.Range(0, config.Layers).Select(l => new Layer
        {
            Rstd1 = new float[_n],
            Norm1 = new float[_n * c],
            Q = new float[_n * qd],
            K = new float[_n * kvd],
            V = new float[_n * kvd],
            Probabilities = new float[batch * config.Heads * length * length],
            AttentionOut = new float[_n * qd],
            Middle = new float[_n * c],
            Rstd2 = new float[_n],
            Norm2 = new float[_n * c],
            Gate = new float[_n * inter],
            Up = new float[_n * inter],
            U = LinearModules.All.Select(module => adapter?[l, module] is null ? null : new float[_n * rank]).ToArray(),
        }).ToArray();
        _residual = Enumerable.Range(0, config.Layers + 1).Select(_ => new float[_n * c]).ToArray();
        _finalNorm = new float[_n * c];
        _finalRstd = new float[_n];
        _dFinalNormUnit = new float[_n * c];
        _rowLogProbability = new float[_n];
        _rowArgmax = new int[_n];
        var half = config.HeadDim / 2;
        _cos = new float[length * half];
        _sin = new float[length * half];
        for (var position = 0; position < length; position++)
        {
            Rope.Angles(model.InverseFrequencies, position, _cos.AsSpan(position * half, half), _sin.AsSpan(position * half, half));
        }

        var widest = Math.Max(Math.Max(c, qd), inter);
        _xDropped = new float[_n * widest];
        _du = new float[_n * Math.Max(rank, 1)];
        _dResidual = new float[_n * c];
        _dNorm = new float[_n * c];
        _dAttention = new float[_n * qd];
        _dq = new float[_n * qd];
        _dk = new float[_n * kvd];
        _dv = new float[_n * kvd];
        _dProbabilities = new float[batch * config.Heads * length * length];
        _dGate = new float[_n * inter];
        _dUp = new float[_n * inter];
        _dHidden = new float[_n * inter];
        _hidden = new float[_n * inter];
        _tmp = new float[_n * Math.Max(c, qd)];
        var chunk = Math.Min(HeadChunk, _n);
        _headIn = new float[chunk * c];
        _headLogits = new float[chunk * config.VocabularySize];
        _headDIn = new float[chunk * c];
    }

    public int Batch => _b;

    public int Length => _t;

    public LoraAdapter? Adapter => _adapter;

    /// <summary>log p(target) at each position of the last Forward (0 where the weight is 0).</summary>
    public ReadOnlySpan<float> TokenLogProbabilities => _rowLogProbability;

    /// <summary>
    /// Runs the batch: tokens, targets and weights are [B·T] (targets the next token at each position, weights how
    /// much its prediction counts: 0 for prompts and padding). With training on, LoRA dropout is applied (its masks
    /// derived from dropoutSeed) and the head's gradient is prepared for <see cref="Backward"/>.
    /// </summary>
    public ForwardResult Forward(int[] tokens, int[] targets, float[] weights, bool training, long dropoutSeed = 0)
    {
        if (tokens.Length != _n || targets.Length != _n || weights.Length != _n)
        {
            throw new ArgumentException($"tokens, targets and weights must each hold B·T = {_n} entries.");
        }

        (_tokens, _targets, _weights, _training, _dropoutSeed) = (tokens, targets, weights, training, dropoutSeed);
        Embed(tokens);
        for (var l = 0; l < _layers.Length; l++)
        {
            LayerForward(l);
        }

        LlamaKernels.RmsNormForward(_residual[^1], _model.FinalNorm, (float)_model.Config.RmsNormEpsilon, _finalNorm, _finalRstd, _n, _model.Config.HiddenSize);
        return HeadForward(training);
    }

    /// <summary>The logits at every position [B·T, vocab] (for checks and evaluation; training never forms them all).</summary>
    public float[] Logits(int[] tokens)
    {
        var zeros = new float[_n];
        Forward(tokens, new int[_n], zeros, training: false);
        var v = _model.Config.VocabularySize;
        var logits = new float[(long)_n * v];
        Gemm.Multiply(_finalNorm, _model.Config.HiddenSize, false, _model.OutputWeights, _model.Config.HiddenSize, true, logits, v, _n, v, _model.Config.HiddenSize, 1f, 0f);
        return logits;
    }

    /// <summary>
    /// Gradients of L = −Σ_t g_t · log p(target_t) for the last (training) Forward into gradients (overwritten).
    /// Supervised training passes g = w / Σw; DPO passes signed per-sequence scales on the answers' tokens.
    /// </summary>
    public void Backward(ReadOnlySpan<float> rowScale, LoraAdapter gradients)
    {
        if (!_training)
        {
            throw new InvalidOperationException("Backward needs a Forward with training on.");
        }

        if (_adapter is null)
        {
            throw new InvalidOperationException("A pass without an adapter has nothing to learn.");
        }

        foreach (var (_, values, _) in gradients.Parameters())
        {
            Array.Clear(values);
        }

        var c = _model.Config.HiddenSize;
        // d(final norm) = g_t · (p − onehot)·W_head, whose unit-scale rows the fused head already formed.
        for (var row = 0; row < _n; row++)
        {
            var scale = _weights[row] != 0 ? rowScale[row] : 0f;
            TensorPrimitives.Multiply(new ReadOnlySpan<float>(_dFinalNormUnit, row * c, c), scale, _dNorm.AsSpan(row * c, c));
        }

        LlamaKernels.RmsNormBackward(_residual[^1], _model.FinalNorm, _finalRstd, _dNorm, _dResidual, accumulate: false, _n, c);
        for (var l = _layers.Length - 1; l >= 0; l--)
        {
            LayerBackward(l, gradients);
        }
    }

    /// <summary>Gradients of the weighted mean cross-entropy (the supervised loss) after a training Forward.</summary>
    public void BackwardMeanLoss(ForwardResult result, LoraAdapter gradients)
    {
        var scale = new float[_n];
        if (result.WeightSum > 0)
        {
            for (var i = 0; i < _n; i++)
            {
                scale[i] = (float)(_weights[i] / result.WeightSum);
            }
        }

        Backward(scale, gradients);
    }

    private void Embed(int[] tokens)
    {
        var c = _model.Config.HiddenSize;
        var v = _model.Config.VocabularySize;
        for (var i = 0; i < _n; i++)
        {
            if ((uint)tokens[i] >= (uint)v)
            {
                throw new ArgumentOutOfRangeException(nameof(tokens), $"Token {tokens[i]} is outside the vocabulary of {v}.");
            }

            new ReadOnlySpan<float>(_model.Embedding, tokens[i] * c, c).CopyTo(_residual[0].AsSpan(i * c, c));
        }
    }

    private DropoutKey Dropout(int layer, LinearModule module) =>
        _training && _adapter is not null ? DropoutKey.For(_dropoutSeed, layer, module, (float)_adapter.Config.Dropout) : DropoutKey.None;

    /// <summary>y = x·Wᵀ + b, plus the adapter's s·dropout(x)·Aᵀ·Bᵀ when this module is adapted.</summary>
    private void Project(int l, LinearModule module, float[] x, float[] y)
    {
        var linear = _model.Layers[l][module];
        LlamaKernels.LinearForward(linear, x, y, _n);
        if (_adapter?[l, module] is { } pair)
        {
            LlamaKernels.LoraForward(pair, _adapter.Scaling, Dropout(l, module), x, _layers[l].U[(int)module], y, _xDropped, _n);
        }
    }

    /// <summary>The backward of <see cref="Project"/>: dx (= or +=) dy·W + the adapter's part; the pair's gradients.</summary>
    private void ProjectBackward(int l, LinearModule module, float[] x, float[] dy, float[] dx, bool accumulate, bool wantInputGradient, LoraAdapter gradients)
    {
        if (wantInputGradient)
        {
            LlamaKernels.LinearBackward(_model.Layers[l][module], dy, dx, _n, accumulate);
        }

        if (_adapter?[l, module] is { } pair)
        {
            LlamaKernels.LoraBackward(pair, gradients[l, module]!, _adapter.Scaling, Dropout(l, module), x, _layers[l].U[(int)module], dy, dx, wantInputGradient, _du, _xDropped, _n);
        }
    }

    // ---- one decoder layer, forward then backward ----

    private void LayerForward(int l)
    {
        var config = _model.Config;
        var weights = _model.Layers[l];
        var a = _layers[l];
        var c = config.HiddenSize;
        var eps = (float)config.RmsNormEpsilon;
        var input = _residual[l];

        LlamaKernels.RmsNormForward(input, weights.InputNorm, eps, a.Norm1, a.Rstd1, _n, c);
        Project(l, LinearModule.Q, a.Norm1, a.Q);
        Project(l, LinearModule.K, a.Norm1, a.K);
        Project(l, LinearModule.V, a.Norm1, a.V);
        ApplyRope(a.Q, config.Heads, backward: false);
        ApplyRope(a.K, config.KeyValueHeads, backward: false);
        LlamaKernels.AttentionForward(a.Q, a.K, a.V, a.Probabilities, a.AttentionOut, _b, _t, config.Heads, config.KeyValueHeads, config.HeadDim, config.SlidingWindow);
        Project(l, LinearModule.O, a.AttentionOut, _tmp);
        TensorPrimitives.Add(input.AsSpan(0, _n * c), _tmp.AsSpan(0, _n * c), a.Middle);

        LlamaKernels.RmsNormForward(a.Middle, weights.PostAttentionNorm, eps, a.Norm2, a.Rstd2, _n, c);
        Project(l, LinearModule.Gate, a.Norm2, a.Gate);
        Project(l, LinearModule.Up, a.Norm2, a.Up);
        LlamaKernels.SwiGluForward(a.Gate, a.Up, _hidden, _n, config.IntermediateSize);
        Project(l, LinearModule.Down, _hidden, _tmp);
        TensorPrimitives.Add(a.Middle.AsSpan(0, _n * c), _tmp.AsSpan(0, _n * c), _residual[l + 1]);
    }

    /// <summary>_dResidual holds d(layer output) on entry and d(layer input) on exit.</summary>
    private void LayerBackward(int l, LoraAdapter gradients)
    {
        var config = _model.Config;
        var weights = _model.Layers[l];
        var a = _layers[l];
        var c = config.HiddenSize;
        var inter = config.IntermediateSize;

        // MLP: the residual passes d(output) to d(middle) unchanged; the branch adds its part.
        LlamaKernels.SwiGluForward(a.Gate, a.Up, _hidden, _n, inter);
        ProjectBackward(l, LinearModule.Down, _hidden, _dResidual, _dHidden, accumulate: false, wantInputGradient: true, gradients);
        LlamaKernels.SwiGluBackward(a.Gate, a.Up, _dHidden, _dGate, _dUp, _n, inter);
        ProjectBackward(l, LinearModule.Gate, a.Norm2, _dGate, _dNorm, accumulate: false, wantInputGradient: true, gradients);
        ProjectBackward(l, LinearModule.Up, a.Norm2, _dUp, _dNorm, accumulate: true, wantInputGradient: true, gradients);
        LlamaKernels.RmsNormBackward(a.Middle, weights.PostAttentionNorm, a.Rstd2, _dNorm, _dResidual, accumulate: true, _n, c);

        // Attention.
        ProjectBackward(l, LinearModule.O, a.AttentionOut, _dResidual, _dAttention, accumulate: false, wantInputGradient: true, gradients);
        LlamaKernels.AttentionBackward(a.Q, a.K, a.V, a.Probabilities, _dAttention, _dProbabilities, _dq, _dk, _dv, _b, _t, config.Heads, config.KeyValueHeads, config.HeadDim);
        ApplyRope(_dq, config.Heads, backward: true);
        ApplyRope(_dk, config.KeyValueHeads, backward: true);
        // The first layer's input is the frozen embedding: nothing below it needs a gradient.
        var below = l > 0;
        ProjectBackward(l, LinearModule.Q, a.Norm1, _dq, _dNorm, accumulate: false, below, gradients);
        ProjectBackward(l, LinearModule.K, a.Norm1, _dk, _dNorm, accumulate: true, below, gradients);
        ProjectBackward(l, LinearModule.V, a.Norm1, _dv, _dNorm, accumulate: true, below, gradients);
        if (below)
        {
            LlamaKernels.RmsNormBackward(_residual[l], weights.InputNorm, a.Rstd1, _dNorm, _dResidual, accumulate: true, _n, c);
        }
    }

    private void ApplyRope(float[] x, int heads, bool backward)
    {
        var headDim = _model.Config.HeadDim;
        var width = heads * headDim;
        var half = headDim / 2;
        LlamaKernels.ForRows(_n, 6L * _n * width, (start, end) =>
        {
            for (var row = start; row < end; row++)
            {
                var position = row % _t;
                var cos = new ReadOnlySpan<float>(_cos, position * half, half);
                var sin = new ReadOnlySpan<float>(_sin, position * half, half);
                if (backward)
                {
                    Rope.Backward(x.AsSpan(row * width, width), heads, headDim, cos, sin);
                }
                else
                {
                    Rope.Apply(x.AsSpan(row * width, width), heads, headDim, cos, sin);
                }
            }
        });
    }

    // ---- the output head fused with the loss ----

    /// <summary>
    /// Logits of the weighted rows, a chunk at a time: log-softmax at the target, argmax, and in training the unit
    /// head gradient (softmax − onehot)·W_head per row, which Backward scales by each row's weight.
    /// </summary>
    private ForwardResult HeadForward(bool training)
    {
        var config = _model.Config;
        var (c, v) = (config.HiddenSize, config.VocabularySize);
        var head = _model.OutputWeights;
        Array.Clear(_rowLogProbability);
        if (training)
        {
            Array.Clear(_dFinalNormUnit);
        }

        var rows = Enumerable.Range(0, _n).Where(row => _weights[row] != 0).ToArray();
        double loss = 0, weightSum = 0;
        var correct = 0;
        var chunk = _headLogits.Length / v;
        for (var start = 0; start < rows.Length; start += chunk)
        {
            var count = Math.Min(chunk, rows.Length - start);
            for (var i = 0; i < count; i++)
            {
                new ReadOnlySpan<float>(_finalNorm, rows[start + i] * c, c).CopyTo(_headIn.AsSpan(i * c, c));
            }

            Gemm.Multiply(_headIn, c, false, head, c, true, _headLogits, v, count, v, c, 1f, 0f);
            LlamaKernels.ForRows(count, 4L * count * v, (first, end) =>
            {
                for (var i = first; i < end; i++)
                {
                    var row = rows[start + i];
                    var logits = _headLogits.AsSpan(i * v, v);
                    var max = TensorPrimitives.Max(logits);
                    _rowArgmax[row] = TensorPrimitives.IndexOfMax(logits);
                    TensorPrimitives.Subtract(logits, max, logits);
                    var target = _targets[row];
                    var shifted = logits[target];
                    TensorPrimitives.Exp(logits, logits);
                    var sum = TensorPrimitives.Sum(logits);
                    _rowLogProbability[row] = shifted - MathF.Log(sum);
                    if (training)
                    {
                        TensorPrimitives.Multiply(logits, 1f / sum, logits);
                        logits[target] -= 1f;
                    }
                }
            });

            if (training)
            {
                Gemm.Multiply(_headLogits, v, false, head, c, false, _headDIn, c, count, c, v, 1f, 0f);
                for (var i = 0; i < count; i++)
                {
                    _headDIn.AsSpan(i * c, c).CopyTo(_dFinalNormUnit.AsSpan(rows[start + i] * c, c));
                }
            }

            for (var i = 0; i < count; i++)
            {
                var row = rows[start + i];
                loss -= _weights[row] * (double)_rowLogProbability[row];
                weightSum += _weights[row];
                correct += _rowArgmax[row] == _targets[row] ? 1 : 0;
            }
        }

        return new ForwardResult(weightSum > 0 ? loss / weightSum : 0, weightSum, correct, rows.Length);
    }
}
