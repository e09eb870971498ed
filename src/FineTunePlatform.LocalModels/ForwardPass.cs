namespace FineTunePlatform.LocalModels;

/// <summary>
/// The activations of one batch shape (B sequences of T tokens), kept for the backward pass, and the gradients of the
/// model's parameters. Allocated once per shape and reused across steps: no allocation in the training loop.
/// </summary>
internal sealed class ForwardPass
{
    private readonly TransformerModel _model;
    private readonly LayerActivations[] _layers;
    private readonly float[] _encoded, _finalNorm, _finalMean, _finalRstd, _logits, _probs;
    private readonly float[] _dResidual, _dScratchC, _dScratchC2, _dQkv, _dAtty, _dFch, _dFchGelu, _dFinalNorm, _dLogits;
    private int[] _targets = [];
    private float[] _weights = [];
    private float _weightSum;

    public ForwardPass(TransformerModel model, int batch, int length)
    {
        if (length > model.Preset.ContextLength)
        {
            throw new ArgumentException($"Sequences of {length} tokens exceed {model.Preset.Name}'s context of {model.Preset.ContextLength}.", nameof(length));
        }

        _model = model;
        Batch = batch;
        Length = length;
        var n = batch * length;
        var c = model.Preset.Channels;
        var v = model.Preset.VocabularySize;
        _encoded = new float[n * c];
        _layers = Enumerable.Range(0, model.Preset.Layers).Select(_ => new LayerActivations(n, c, batch, model.Preset.Heads, length)).ToArray();
        _finalNorm = new float[n * c];
        _finalMean = new float[n];
        _finalRstd = new float[n];
        _logits = new float[n * v];
        _probs = new float[n * v];
        _dResidual = new float[n * c];
        _dScratchC = new float[n * c];
        _dScratchC2 = new float[n * c];
        _dQkv = new float[n * 3 * c];
        _dAtty = new float[n * c];
        _dFch = new float[n * 4 * c];
        _dFchGelu = new float[n * 4 * c];
        _dFinalNorm = new float[n * c];
        _dLogits = new float[n * v];
        Gradients = new float[model.Parameters.Length];
    }

    public int Batch { get; }

    public int Length { get; }

    public float[] Gradients { get; }

    /// <summary>Probabilities of the next token at each position, [B·T, V], after Forward.</summary>
    public float[] Probabilities => _probs;

    private sealed class LayerActivations(int n, int c, int batch, int heads, int length)
    {
        public float[] Input { get; } = new float[n * c];
        public float[] Norm1 { get; } = new float[n * c];
        public float[] Norm1Mean { get; } = new float[n];
        public float[] Norm1Rstd { get; } = new float[n];
        public float[] Qkv { get; } = new float[n * 3 * c];
        public float[] Attention { get; } = new float[batch * heads * length * length];
        public float[] Atty { get; } = new float[n * c];
        public float[] AttProj { get; } = new float[n * c];
        public float[] Residual2 { get; } = new float[n * c];
        public float[] Norm2 { get; } = new float[n * c];
        public float[] Norm2Mean { get; } = new float[n];
        public float[] Norm2Rstd { get; } = new float[n];
        public float[] Fch { get; } = new float[n * 4 * c];
        public float[] FchGelu { get; } = new float[n * 4 * c];
        public float[] FcProj { get; } = new float[n * c];
        public float[] Output { get; } = new float[n * c];
    }

    /// <summary>
    /// Runs the model over tokens [B·T]; with targets and weights (the next token at each position and how much its
    /// prediction counts) also computes the loss. Returns (loss, weight sum, correct, counted).
    /// </summary>
    public (double Loss, float WeightSum, int Correct, int Counted) Forward(int[] tokens, int[]? targets = null, float[]? weights = null)
    {
        var p = _model.Parameters;
        var layout = _model.Layout;
        var (b, t, c) = (Batch, Length, _model.Preset.Channels);
        var n = b * t;
        var v = _model.Preset.VocabularySize;
        var heads = _model.Preset.Heads;

        for (var i = 0; i < n; i++)
        {
            var token = tokens[i];
            var position = i % t;
            var row = _encoded.AsSpan(i * c, c);
            var wte = new ReadOnlySpan<float>(p, layout.TokenEmbedding + (token * c), c);
            var wpe = new ReadOnlySpan<float>(p, layout.PositionEmbedding + (position * c), c);
            System.Numerics.Tensors.TensorPrimitives.Add(wte, wpe, row);
        }

        var residual = _encoded;
        for (var l = 0; l < _layers.Length; l++)
        {
            var a = _layers[l];
            var o = layout.Layers[l];
            Array.Copy(residual, a.Input, n * c);
            Kernels.LayerNormForward(a.Norm1, a.Norm1Mean, a.Norm1Rstd, a.Input, p, o.Norm1Weight, o.Norm1Bias, n, c);
            Kernels.MatmulForward(a.Qkv, 0, a.Norm1, 0, p, o.QkvWeight, o.QkvBias, true, n, c, 3 * c);
            Kernels.AttentionForward(a.Atty, a.Attention, a.Qkv, b, t, c, heads);
            Kernels.MatmulForward(a.AttProj, 0, a.Atty, 0, p, o.ProjWeight, o.ProjBias, true, n, c, c);
            System.Numerics.Tensors.TensorPrimitives.Add(a.Input.AsSpan(0, n * c), a.AttProj.AsSpan(0, n * c), a.Residual2);
            Kernels.LayerNormForward(a.Norm2, a.Norm2Mean, a.Norm2Rstd, a.Residual2, p, o.Norm2Weight, o.Norm2Bias, n, c);
            Kernels.MatmulForward(a.Fch, 0, a.Norm2, 0, p, o.FcWeight, o.FcBias, true, n, c, 4 * c);
            Kernels.GeluForward(a.FchGelu, a.Fch, n * 4 * c);
            Kernels.MatmulForward(a.FcProj, 0, a.FchGelu, 0, p, o.FcProjWeight, o.FcProjBias, true, n, 4 * c, c);
            System.Numerics.Tensors.TensorPrimitives.Add(a.Residual2.AsSpan(0, n * c), a.FcProj.AsSpan(0, n * c), a.Output);
            residual = a.Output;
        }

        Kernels.LayerNormForward(_finalNorm, _finalMean, _finalRstd, residual, p, layout.FinalNormWeight, layout.FinalNormBias, n, c);
        Kernels.MatmulForward(_logits, 0, _finalNorm, 0, p, layout.TokenEmbedding, 0, false, n, c, v);

        _targets = targets ?? new int[n];
        _weights = weights ?? new float[n];
        var result = Kernels.SoftmaxCrossEntropy(_probs, _logits, _targets, _weights, n, v);
        _weightSum = result.WeightSum;
        return result;
    }

    /// <summary>
    /// Each sequence's (row's) log-likelihood of the tokens it learns in the last Forward: Σ_t w_t · log p(target_t).
    /// </summary>
    public double[] SequenceLogProbabilities()
    {
        var v = _model.Preset.VocabularySize;
        var sums = new double[Batch];
        for (var i = 0; i < Batch * Length; i++)
        {
            if (_weights[i] != 0)
            {
                sums[i / Length] += _weights[i] * Math.Log(Math.Max(_probs[(i * v) + _targets[i]], 1e-30f));
            }
        }

        return sums;
    }

    /// <summary>Gradients of the last Forward's loss with respect to every parameter, into Gradients (overwritten).</summary>
    public void Backward(int[] tokens) => Backward(tokens, _weights, _weightSum);

    /// <summary>
    /// Gradients of Σ_t g_t · CE_t / normaliser for the last Forward's predictions, with per-token weights g that may
    /// be negative (DPO pushes the rejected sequence's likelihood down), into Gradients (overwritten).
    /// </summary>
    public void Backward(int[] tokens, float[] gradientWeights, float normaliser)
    {
        var p = _model.Parameters;
        var g = Gradients;
        var layout = _model.Layout;
        var (b, t, c) = (Batch, Length, _model.Preset.Channels);
        var n = b * t;
        var v = _model.Preset.VocabularySize;
        var heads = _model.Preset.Heads;
        Array.Clear(g);
        Array.Clear(_dLogits);
        Array.Clear(_dFinalNorm);
        Array.Clear(_dResidual);

        Kernels.SoftmaxCrossEntropyBackward(_dLogits, _probs, _targets, gradientWeights, normaliser, n, v);
        Kernels.MatmulBackward(_dFinalNorm, 0, g, layout.TokenEmbedding, 0, false, _dLogits, 0, _finalNorm, 0, p, layout.TokenEmbedding, n, c, v);
        var lastOutput = _layers.Length > 0 ? _layers[^1].Output : _encoded;
        Kernels.LayerNormBackward(_dResidual, g, layout.FinalNormWeight, layout.FinalNormBias, _dFinalNorm, lastOutput, p, layout.FinalNormWeight, _finalMean, _finalRstd, n, c);

        for (var l = _layers.Length - 1; l >= 0; l--)
        {
            var a = _layers[l];
            var o = layout.Layers[l];
            // _dResidual holds d(Output); the residual connection passes it to Residual2 unchanged.
            Array.Clear(_dFchGelu);
            Array.Clear(_dFch);
            Kernels.MatmulBackward(_dFchGelu, 0, g, o.FcProjWeight, o.FcProjBias, true, _dResidual, 0, a.FchGelu, 0, p, o.FcProjWeight, n, 4 * c, c);
            Kernels.GeluBackward(_dFch, a.Fch, _dFchGelu, n * 4 * c);
            Array.Clear(_dScratchC);
            Kernels.MatmulBackward(_dScratchC, 0, g, o.FcWeight, o.FcBias, true, _dFch, 0, a.Norm2, 0, p, o.FcWeight, n, c, 4 * c);
            Kernels.LayerNormBackward(_dResidual, g, o.Norm2Weight, o.Norm2Bias, _dScratchC, a.Residual2, p, o.Norm2Weight, a.Norm2Mean, a.Norm2Rstd, n, c);

            // _dResidual now holds d(Residual2), which flows to Input directly and through attention.
            Array.Clear(_dAtty);
            Kernels.MatmulBackward(_dAtty, 0, g, o.ProjWeight, o.ProjBias, true, _dResidual, 0, a.Atty, 0, p, o.ProjWeight, n, c, c);
            Array.Clear(_dQkv);
            Kernels.AttentionBackward(_dQkv, _dAtty, a.Qkv, a.Attention, b, t, c, heads);
            Array.Clear(_dScratchC2);
            Kernels.MatmulBackward(_dScratchC2, 0, g, o.QkvWeight, o.QkvBias, true, _dQkv, 0, a.Norm1, 0, p, o.QkvWeight, n, c, 3 * c);
            Kernels.LayerNormBackward(_dResidual, g, o.Norm1Weight, o.Norm1Bias, _dScratchC2, a.Input, p, o.Norm1Weight, a.Norm1Mean, a.Norm1Rstd, n, c);
        }

        // d(encoded) into the embeddings: rows in token order, so repeated tokens add up deterministically.
        for (var i = 0; i < n; i++)
        {
            var d = new ReadOnlySpan<float>(_dResidual, i * c, c);
            var wte = g.AsSpan(layout.TokenEmbedding + (tokens[i] * c), c);
            var wpe = g.AsSpan(layout.PositionEmbedding + ((i % t) * c), c);
            System.Numerics.Tensors.TensorPrimitives.Add(wte, d, wte);
            System.Numerics.Tensors.TensorPrimitives.Add(wpe, d, wpe);
        }
    }
}
