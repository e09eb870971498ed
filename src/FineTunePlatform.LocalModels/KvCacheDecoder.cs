using System.Numerics.Tensors;

namespace FineTunePlatform.LocalModels;

/// <summary>
/// Incremental decoding for one sequence: each new token runs through the layers once, attending to the keys and
/// values cached for the tokens before it, instead of recomputing the whole sequence. Uses the same kernels and
/// operation order as ForwardPass, so its probabilities equal the full pass's.
/// </summary>
internal sealed class KvCacheDecoder
{
    private readonly TransformerModel _model;
    private readonly float[][] _keys;
    private readonly float[][] _values;
    private readonly float[] _x, _norm, _mean = new float[1], _rstd = new float[1], _qkv, _atty, _proj, _fch, _fchGelu, _scores, _logits;

    public KvCacheDecoder(TransformerModel model)
    {
        _model = model;
        var preset = model.Preset;
        var c = preset.Channels;
        _keys = Enumerable.Range(0, preset.Layers).Select(_ => new float[preset.ContextLength * c]).ToArray();
        _values = Enumerable.Range(0, preset.Layers).Select(_ => new float[preset.ContextLength * c]).ToArray();
        _x = new float[c];
        _norm = new float[c];
        _qkv = new float[3 * c];
        _atty = new float[c];
        _proj = new float[c];
        _fch = new float[4 * c];
        _fchGelu = new float[4 * c];
        _scores = new float[preset.ContextLength];
        _logits = new float[preset.VocabularySize];
        Probabilities = new float[preset.VocabularySize];
    }

    /// <summary>Tokens consumed so far.</summary>
    public int Position { get; private set; }

    /// <summary>The next-token distribution after the last Append.</summary>
    public float[] Probabilities { get; }

    public void Append(int token)
    {
        var preset = _model.Preset;
        if (Position >= preset.ContextLength)
        {
            throw new InvalidOperationException($"The context of {preset.ContextLength} tokens is full.");
        }

        var p = _model.Parameters;
        var layout = _model.Layout;
        var c = preset.Channels;
        var hs = preset.HeadSize;
        var scale = 1f / MathF.Sqrt(hs);
        TensorPrimitives.Add(new ReadOnlySpan<float>(p, layout.TokenEmbedding + (token * c), c), new ReadOnlySpan<float>(p, layout.PositionEmbedding + (Position * c), c), _x);
        for (var l = 0; l < preset.Layers; l++)
        {
            var o = layout.Layers[l];
            Kernels.LayerNormForward(_norm, _mean, _rstd, _x, p, o.Norm1Weight, o.Norm1Bias, 1, c);
            Kernels.MatmulForward(_qkv, 0, _norm, 0, p, o.QkvWeight, o.QkvBias, true, 1, c, 3 * c);
            _qkv.AsSpan(c, c).CopyTo(_keys[l].AsSpan(Position * c, c));
            _qkv.AsSpan(2 * c, c).CopyTo(_values[l].AsSpan(Position * c, c));
            for (var h = 0; h < preset.Heads; h++)
            {
                var q = new ReadOnlySpan<float>(_qkv, h * hs, hs);
                var max = float.NegativeInfinity;
                for (var j = 0; j <= Position; j++)
                {
                    _scores[j] = TensorPrimitives.Dot(q, new ReadOnlySpan<float>(_keys[l], (j * c) + (h * hs), hs)) * scale;
                    max = MathF.Max(max, _scores[j]);
                }

                var sum = 0f;
                for (var j = 0; j <= Position; j++)
                {
                    _scores[j] = MathF.Exp(_scores[j] - max);
                    sum += _scores[j];
                }

                var inverse = 1f / sum;
                var output = _atty.AsSpan(h * hs, hs);
                output.Clear();
                for (var j = 0; j <= Position; j++)
                {
                    TensorPrimitives.MultiplyAdd(new ReadOnlySpan<float>(_values[l], (j * c) + (h * hs), hs), _scores[j] * inverse, output, output);
                }
            }

            Kernels.MatmulForward(_proj, 0, _atty, 0, p, o.ProjWeight, o.ProjBias, true, 1, c, c);
            TensorPrimitives.Add(_x, _proj, _x);
            Kernels.LayerNormForward(_norm, _mean, _rstd, _x, p, o.Norm2Weight, o.Norm2Bias, 1, c);
            Kernels.MatmulForward(_fch, 0, _norm, 0, p, o.FcWeight, o.FcBias, true, 1, c, 4 * c);
            Kernels.GeluForward(_fchGelu, _fch, 4 * c);
            Kernels.MatmulForward(_proj, 0, _fchGelu, 0, p, o.FcProjWeight, o.FcProjBias, true, 1, 4 * c, c);
            TensorPrimitives.Add(_x, _proj, _x);
        }

        Kernels.LayerNormForward(_norm, _mean, _rstd, _x, p, layout.FinalNormWeight, layout.FinalNormBias, 1, c);
        Kernels.MatmulForward(_logits, 0, _norm, 0, p, layout.TokenEmbedding, 0, false, 1, c, preset.VocabularySize);
        TensorPrimitives.SoftMax(_logits, Probabilities);
        Position++;
    }
}
