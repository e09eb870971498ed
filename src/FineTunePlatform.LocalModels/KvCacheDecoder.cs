using System.Numerics.Tensors;

namespace FineTunePlatform.LocalModels;

/// <summary>
/// One sequence being generated: the keys and values cached for its tokens so far. The caches grow with the sequence
/// (doubling, up to the context) instead of holding the whole context from the start: with 1,024-token contexts a
/// full cache of local-small is 8 MB per request, most of it never used by a short chat.
/// </summary>
internal sealed class DecodingSequence
{
    private const int InitialTokens = 64;
    private readonly ModelPreset _preset;

    public DecodingSequence(ModelPreset preset)
    {
        _preset = preset;
        var tokens = Math.Min(InitialTokens, preset.ContextLength);
        Keys = Enumerable.Range(0, preset.Layers).Select(_ => new float[tokens * preset.Channels]).ToArray();
        Values = Enumerable.Range(0, preset.Layers).Select(_ => new float[tokens * preset.Channels]).ToArray();
        Probabilities = new float[preset.VocabularySize];
    }

    /// <summary>Makes room for `tokens` cached positions (at most the context).</summary>
    public void EnsureCapacity(int tokens)
    {
        var c = _preset.Channels;
        if (Keys[0].Length >= tokens * c)
        {
            return;
        }

        var grown = Math.Min(_preset.ContextLength, Math.Max(tokens, 2 * Keys[0].Length / c)) * c;
        for (var l = 0; l < Keys.Length; l++)
        {
            var keys = Keys[l];
            var values = Values[l];
            Array.Resize(ref keys, grown);
            Array.Resize(ref values, grown);
            Keys[l] = keys;
            Values[l] = values;
        }
    }

    public float[][] Keys { get; }

    public float[][] Values { get; }


    /// <summary>Tokens consumed so far.</summary>
    public int Position { get; internal set; }

    /// <summary>The next-token distribution after the last step that included this sequence.</summary>
    public float[] Probabilities { get; }
}

/// <summary>
/// Incremental decoding with cached keys and values, for several sequences at once: one step runs each sequence's new
/// tokens (a whole prompt, or the one token just sampled) through the layers together, so every weight matrix is read
/// once per step for all of them instead of once per sequence — that reuse is what makes batching pay on a CPU, where
/// a single sequence's matrix-vector products are bound by memory. Each output row is computed with the same kernels
/// and operation order as ForwardPass, so a sequence's probabilities are those of the full pass, batched or not.
/// </summary>
internal sealed class KvCacheDecoder(TransformerModel model)
{
    private float[] _x = [], _norm = [], _qkv = [], _atty = [], _proj = [], _fch = [], _fchGelu = [], _rowMean = [], _rowRstd = [];
    private float[] _lastNorm = [], _logits = [];
    private (DecodingSequence Sequence, int Position)[] _rows = [];
    private float[][] _scores = [];

    /// <summary>Convenience for one sequence and one token.</summary>
    public void Append(DecodingSequence sequence, int token) => Step([(sequence, [token])]);

    /// <summary>
    /// Appends each sequence's tokens to its cache; afterwards each sequence's Probabilities are the distribution of the
    /// token after its last one. singleThreaded keeps the work on the calling thread (the results are the same).
    /// </summary>
    public void Step(IReadOnlyList<(DecodingSequence Sequence, int[] Tokens)> work, bool singleThreaded = false)
    {
        using var scope = Kernels.SingleThreaded(singleThreaded);
        var preset = model.Preset;
        var p = model.Parameters;
        var layout = model.Layout;
        var c = preset.Channels;
        var n = 0;
        foreach (var (sequence, tokens) in work)
        {
            n += tokens.Length;
            if (sequence.Position + tokens.Length > preset.ContextLength)
            {
                throw new InvalidOperationException($"{tokens.Length} more tokens do not fit the context of {preset.ContextLength} tokens.");
            }

            sequence.EnsureCapacity(sequence.Position + tokens.Length);
        }

        EnsureCapacity(n, work.Count);
        var row = 0;
        long attended = 0;
        foreach (var (sequence, tokens) in work)
        {
            for (var i = 0; i < tokens.Length; i++, row++)
            {
                var position = sequence.Position + i;
                _rows[row] = (sequence, position);
                attended += position + 1;
                TensorPrimitives.Add(new ReadOnlySpan<float>(p, layout.TokenEmbedding + (tokens[i] * c), c),
                    new ReadOnlySpan<float>(p, layout.PositionEmbedding + (position * c), c), _x.AsSpan(row * c, c));
            }
        }

        for (var l = 0; l < preset.Layers; l++)
        {
            var o = layout.Layers[l];
            Kernels.LayerNormForward(_norm, _rowMean, _rowRstd, _x, p, o.Norm1Weight, o.Norm1Bias, n, c);
            Kernels.MatmulForward(_qkv, 0, _norm, 0, p, o.QkvWeight, o.QkvBias, true, n, c, 3 * c);
            for (var r = 0; r < n; r++)
            {
                var (sequence, position) = _rows[r];
                _qkv.AsSpan((r * 3 * c) + c, c).CopyTo(sequence.Keys[l].AsSpan(position * c, c));
                _qkv.AsSpan((r * 3 * c) + (2 * c), c).CopyTo(sequence.Values[l].AsSpan(position * c, c));
            }

            Attend(l, n, attended);
            Kernels.MatmulForward(_proj, 0, _atty, 0, p, o.ProjWeight, o.ProjBias, true, n, c, c);
            TensorPrimitives.Add(_x.AsSpan(0, n * c), _proj.AsSpan(0, n * c), _x.AsSpan(0, n * c));
            Kernels.LayerNormForward(_norm, _rowMean, _rowRstd, _x, p, o.Norm2Weight, o.Norm2Bias, n, c);
            Kernels.MatmulForward(_fch, 0, _norm, 0, p, o.FcWeight, o.FcBias, true, n, c, 4 * c);
            Kernels.GeluForward(_fchGelu, _fch, n * 4 * c);
            Kernels.MatmulForward(_proj, 0, _fchGelu, 0, p, o.FcProjWeight, o.FcProjBias, true, n, 4 * c, c);
            TensorPrimitives.Add(_x.AsSpan(0, n * c), _proj.AsSpan(0, n * c), _x.AsSpan(0, n * c));
        }

        // Only each sequence's last row needs the output distribution.
        row = 0;
        for (var s = 0; s < work.Count; s++)
        {
            row += work[s].Tokens.Length;
            _x.AsSpan((row - 1) * c, c).CopyTo(_lastNorm.AsSpan(s * c, c));
        }

        Kernels.LayerNormForward(_lastNorm, _rowMean, _rowRstd, _lastNorm, p, layout.FinalNormWeight, layout.FinalNormBias, work.Count, c);
        var v = preset.VocabularySize;
        Kernels.MatmulForward(_logits, 0, _lastNorm, 0, p, layout.TokenEmbedding, 0, false, work.Count, c, v);
        for (var s = 0; s < work.Count; s++)
        {
            var (sequence, tokens) = work[s];
            TensorPrimitives.SoftMax(_logits.AsSpan(s * v, v), sequence.Probabilities);
            sequence.Position += tokens.Length;
        }
    }

    /// <summary>
    /// Causal attention of each row over its own sequence's cache, rows and heads spread across cores when the work
    /// (attended: cached positions summed over the rows) pays for it.
    /// </summary>
    private void Attend(int layer, int n, long attended)
    {
        var preset = model.Preset;
        var c = preset.Channels;
        var heads = preset.Heads;
        var hs = preset.HeadSize;
        var scale = 1f / MathF.Sqrt(hs);
        Kernels.For(n * heads, 2 * attended * c, rh =>
        {
            var r = rh / heads;
            var h = rh % heads;
            var (sequence, position) = _rows[r];
            Kernels.AttendOne(new ReadOnlySpan<float>(_qkv, (r * 3 * c) + (h * hs), hs), sequence.Keys[layer], h * hs, sequence.Values[layer], h * hs,
                c, position + 1, scale, _scores[rh], _atty.AsSpan((r * c) + (h * hs), hs));
        });
    }

    /// <summary>Buffers grow to the largest step seen and are reused: steady decoding allocates nothing.</summary>
    private void EnsureCapacity(int rows, int sequences)
    {
        var c = model.Preset.Channels;
        if (_rows.Length < rows)
        {
            _rows = new (DecodingSequence, int)[rows];
            _x = new float[rows * c];
            _norm = new float[rows * c];
            _qkv = new float[rows * 3 * c];
            _atty = new float[rows * c];
            _proj = new float[rows * c];
            _fch = new float[rows * 4 * c];
            _fchGelu = new float[rows * 4 * c];
            _rowMean = new float[rows];
            _rowRstd = new float[rows];
            _scores = Enumerable.Range(0, rows * model.Preset.Heads).Select(_ => new float[model.Preset.ContextLength]).ToArray();
        }

        if (_lastNorm.Length < sequences * c)
        {
            _lastNorm = new float[sequences * c];
            _logits = new float[sequences * model.Preset.VocabularySize];
        }
    }
}
