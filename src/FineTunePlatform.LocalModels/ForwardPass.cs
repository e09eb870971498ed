namespace FineTunePlatform.LocalModels;

/// <summary>
/// The activations of one batch shape (B sequences of T tokens), kept for the backward pass, and the gradients of the
/// model's parameters. Allocated once per shape and reused across steps: no allocation in the training loop.
/// </summary>
internal sealed class ForwardPass
{
    private readonly TransformerModel _model;
    private readonly LayerActivations[] _layers;
    private readonly float[] _encoded, _finalNorm, _finalMean, _finalRstd, _selectedNorm, _logits, _probs;
    private readonly float[] _dResidual, _dScratchC, _dScratchC2, _dQkv, _dAtty, _dFch, _dFchGelu, _dFinalNorm, _dSelectedNorm, _dLogits;
    private readonly int[] _selected;
    private int _selectedCount;
    private int[] _targets = [];
    private float[] _weights = [];
    private float[] _selectedTargetsWeights = [];
    private int[] _selectedTargets = [];
    private float _weightSum;
    private int[]? _positionOffsets;

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
        _selected = new int[n];
        _selectedNorm = new float[n * c];
        _dSelectedNorm = new float[n * c];
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

    /// <summary>
    /// Where each sequence of the batch starts in the position embeddings (none: at 0). Training shifts a short
    /// example to a random start (<see cref="TrainingOptions.PositionJitter"/>) so what it learns does not depend
    /// on the absolute positions of its tokens; a sequence and its offset together must fit the context.
    /// </summary>
    public int[]? PositionOffsets
    {
        get => _positionOffsets;
        set
        {
            if (value is not null && (value.Length != Batch || value.Any(offset => offset < 0 || offset + Length > _model.Preset.ContextLength)))
            {
                throw new ArgumentOutOfRangeException(nameof(value), $"One offset per sequence, each leaving the {Length} tokens within the context of {_model.Preset.ContextLength}.");
            }

            _positionOffsets = value;
        }
    }

    public int Length { get; }

    public float[] Gradients { get; }

    /// <summary>
    /// Probabilities of the next token at each position, [B·T, V], after a Forward without loss weights. With weights,
    /// only the weighted positions get an output distribution (the others cost nothing beyond the last layer), in
    /// position order: with a few learned tokens per example, the vocabulary projection would otherwise dominate.
    /// </summary>
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
            var position = (i % t) + (_positionOffsets?[i / t] ?? 0);
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
            Kernels.MatmulForwardGemm(a.Qkv, 0, a.Norm1, 0, p, o.QkvWeight, o.QkvBias, true, n, c, 3 * c);
            Kernels.AttentionForward(a.Atty, a.Attention, a.Qkv, b, t, c, heads);
            Kernels.MatmulForwardGemm(a.AttProj, 0, a.Atty, 0, p, o.ProjWeight, o.ProjBias, true, n, c, c);
            System.Numerics.Tensors.TensorPrimitives.Add(a.Input.AsSpan(0, n * c), a.AttProj.AsSpan(0, n * c), a.Residual2);
            Kernels.LayerNormForward(a.Norm2, a.Norm2Mean, a.Norm2Rstd, a.Residual2, p, o.Norm2Weight, o.Norm2Bias, n, c);
            Kernels.MatmulForwardGemm(a.Fch, 0, a.Norm2, 0, p, o.FcWeight, o.FcBias, true, n, c, 4 * c);
            Kernels.GeluForward(a.FchGelu, a.Fch, n * 4 * c);
            Kernels.MatmulForwardGemm(a.FcProj, 0, a.FchGelu, 0, p, o.FcProjWeight, o.FcProjBias, true, n, 4 * c, c);
            System.Numerics.Tensors.TensorPrimitives.Add(a.Residual2.AsSpan(0, n * c), a.FcProj.AsSpan(0, n * c), a.Output);
            residual = a.Output;
        }

        Kernels.LayerNormForward(_finalNorm, _finalMean, _finalRstd, residual, p, layout.FinalNormWeight, layout.FinalNormBias, n, c);

        // The output distribution only where it is needed: every position without weights, the weighted ones with.
        _targets = targets ?? new int[n];
        _weights = weights ?? new float[n];
        _selectedCount = 0;
        for (var i = 0; i < n; i++)
        {
            if (weights is null || weights[i] != 0)
            {
                _selected[_selectedCount++] = i;
            }
        }

        var m = _selectedCount;
        if (_selectedTargets.Length < m)
        {
            _selectedTargets = new int[n];
            _selectedTargetsWeights = new float[n];
        }

        for (var r = 0; r < m; r++)
        {
            var i = _selected[r];
            _finalNorm.AsSpan(i * c, c).CopyTo(_selectedNorm.AsSpan(r * c, c));
            _selectedTargets[r] = _targets[i];
            _selectedTargetsWeights[r] = _weights[i];
        }

        Kernels.MatmulForwardGemm(_logits, 0, _selectedNorm, 0, p, layout.TokenEmbedding, 0, false, m, c, v);
        var result = Kernels.SoftmaxCrossEntropy(_probs, _logits, _selectedTargets, _selectedTargetsWeights, m, v);
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
        for (var r = 0; r < _selectedCount; r++)
        {
            var i = _selected[r];
            if (_weights[i] != 0)
            {
                sums[i / Length] += _weights[i] * Math.Log(Math.Max(_probs[(r * v) + _targets[i]], 1e-30f));
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

        // Only the positions that got an output distribution can carry a gradient (weight 0 elsewhere).
        var m = _selectedCount;
        for (var r = 0; r < m; r++)
        {
            _selectedTargetsWeights[r] = gradientWeights[_selected[r]];
        }

        Kernels.SoftmaxCrossEntropyBackward(_dLogits, _probs, _selectedTargets, _selectedTargetsWeights, normaliser, m, v);
        _dSelectedNorm.AsSpan(0, m * c).Clear();
        Kernels.MatmulBackwardGemm(_dSelectedNorm, 0, g, layout.TokenEmbedding, 0, false, _dLogits, 0, _selectedNorm, 0, p, layout.TokenEmbedding, m, c, v);
        for (var r = 0; r < m; r++)
        {
            _dSelectedNorm.AsSpan(r * c, c).CopyTo(_dFinalNorm.AsSpan(_selected[r] * c, c));
        }

        var lastOutput = _layers.Length > 0 ? _layers[^1].Output : _encoded;
        Kernels.LayerNormBackward(_dResidual, g, layout.FinalNormWeight, layout.FinalNormBias, _dFinalNorm, lastOutput, p, layout.FinalNormWeight, _finalMean, _finalRstd, n, c);

        for (var l = _layers.Length - 1; l >= 0; l--)
        {
            var a = _layers[l];
            var o = layout.Layers[l];
            // _dResidual holds d(Output); the residual connection passes it to Residual2 unchanged.
            Array.Clear(_dFchGelu);
            Array.Clear(_dFch);
            Kernels.MatmulBackwardGemm(_dFchGelu, 0, g, o.FcProjWeight, o.FcProjBias, true, _dResidual, 0, a.FchGelu, 0, p, o.FcProjWeight, n, 4 * c, c);
            Kernels.GeluBackward(_dFch, a.Fch, _dFchGelu, n * 4 * c);
            Array.Clear(_dScratchC);
            Kernels.MatmulBackwardGemm(_dScratchC, 0, g, o.FcWeight, o.FcBias, true, _dFch, 0, a.Norm2, 0, p, o.FcWeight, n, c, 4 * c);
            Kernels.LayerNormBackward(_dResidual, g, o.Norm2Weight, o.Norm2Bias, _dScratchC, a.Residual2, p, o.Norm2Weight, a.Norm2Mean, a.Norm2Rstd, n, c);

            // _dResidual now holds d(Residual2), which flows to Input directly and through attention.
            Array.Clear(_dAtty);
            Kernels.MatmulBackwardGemm(_dAtty, 0, g, o.ProjWeight, o.ProjBias, true, _dResidual, 0, a.Atty, 0, p, o.ProjWeight, n, c, c);
            Array.Clear(_dQkv);
            Kernels.AttentionBackward(_dQkv, _dAtty, a.Qkv, a.Attention, b, t, c, heads);
            Array.Clear(_dScratchC2);
            Kernels.MatmulBackwardGemm(_dScratchC2, 0, g, o.QkvWeight, o.QkvBias, true, _dQkv, 0, a.Norm1, 0, p, o.QkvWeight, n, c, 3 * c);
            Kernels.LayerNormBackward(_dResidual, g, o.Norm1Weight, o.Norm1Bias, _dScratchC2, a.Input, p, o.Norm1Weight, a.Norm1Mean, a.Norm1Rstd, n, c);
        }

        // d(encoded) into the embeddings: rows in token order, so repeated tokens add up deterministically.
        for (var i = 0; i < n; i++)
        {
            var d = new ReadOnlySpan<float>(_dResidual, i * c, c);
            var wte = g.AsSpan(layout.TokenEmbedding + (tokens[i] * c), c);
            var wpe = g.AsSpan(layout.PositionEmbedding + (((i % t) + (_positionOffsets?[i / t] ?? 0)) * c), c);
            System.Numerics.Tensors.TensorPrimitives.Add(wte, d, wte);
            System.Numerics.Tensors.TensorPrimitives.Add(wpe, d, wpe);
        }
    }
}
