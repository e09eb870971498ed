using System.Numerics.Tensors;
using Gemm = FineTunePlatform.LocalModels.Gemm;

namespace FineTunePlatform.OpenWeights;

/// <summary>
/// One sequence being generated: its adapter (null for the base alone), the rotary-embedded keys and values cached for
/// its tokens so far (grown by doubling, never sized to a 128k context up front), and the logits after its last step.
/// </summary>
public sealed class DecodingSequence
{
    private readonly int _kvDim;

    public DecodingSequence(LlamaModel model, LoraAdapter? adapter)
    {
        if (adapter is not null && adapter.Model.Layers != model.Config.Layers)
        {
            throw new ArgumentException("The adapter was made for a model of another shape.", nameof(adapter));
        }

        Adapter = adapter;
        _kvDim = model.Config.KeyValueDim;
        Keys = new float[model.Config.Layers][];
        Values = new float[model.Config.Layers][];
        for (var l = 0; l < Keys.Length; l++)
        {
            Keys[l] = [];
            Values[l] = [];
        }

        Logits = new float[model.Config.VocabularySize];
    }

    public LoraAdapter? Adapter { get; }

    /// <summary>Tokens consumed so far.</summary>
    public int Position { get; internal set; }

    /// <summary>The next token's logits after the last step that included this sequence.</summary>
    public float[] Logits { get; }

    internal float[][] Keys { get; }

    internal float[][] Values { get; }

    internal void EnsureCapacity(int positions)
    {
        if (Keys[0].Length >= positions * _kvDim)
        {
            return;
        }

        var capacity = Math.Max(positions, Math.Max(64, Keys[0].Length / _kvDim * 2));
        for (var l = 0; l < Keys.Length; l++)
        {
            Array.Resize(ref Keys[l], capacity * _kvDim);
            Array.Resize(ref Values[l], capacity * _kvDim);
        }
    }
}

/// <summary>
/// Incremental decoding with cached keys and values over a shared base, batched over sequences that may each use a
/// different adapter (S-LoRA/Punica's layout): every base weight matrix is applied once to all the step's rows in one
/// GEMM, then each group of rows that shares an adapter adds its low-rank product s·(x·Aᵀ)·Bᵀ, so eight adapters on one
/// base cost eight small rank-r products per module, not eight passes over the base. Rows are grouped by adapter
/// inside a step; each row computes the same values whatever it is batched with.
/// </summary>
public sealed class KvCacheDecoder(LlamaModel model)
{
    private float[] _x = [], _norm = [], _q = [], _k = [], _v = [], _attention = [], _tmp = [], _gate = [], _up = [], _hidden = [], _u = [];
    private float[] _last = [], _lastNorm = [], _rstd = [], _logits = [], _cos = [], _sin = [];
    private (DecodingSequence Sequence, int Position)[] _rows = [];

    public LlamaModel Model => model;

    /// <summary>
    /// Appends each sequence's tokens (a whole prompt, or the one token just sampled) to its cache; afterwards each
    /// sequence's Logits are those of the token after its last one.
    /// </summary>
    public void Step(IReadOnlyList<(DecodingSequence Sequence, int[] Tokens)> work)
    {
        var config = model.Config;
        var (c, qd, kvd, inter, headDim) = (config.HiddenSize, config.QueryDim, config.KeyValueDim, config.IntermediateSize, config.HeadDim);
        // Rows of sequences sharing an adapter are made adjacent, so each adapter's product is one GEMM per module.
        var ordered = work.Select((item, index) => (item, index)).OrderBy(entry => AdapterKey(entry.item.Sequence.Adapter)).ThenBy(entry => entry.index).Select(entry => entry.item).ToList();
        var n = ordered.Sum(item => item.Tokens.Length);
        if (n == 0)
        {
            return;
        }

        EnsureBuffers(n, ordered.Count);
        var groups = new List<(LoraAdapter Adapter, int Start, int Count)>();
        var row = 0;
        var half = headDim / 2;
        foreach (var (sequence, tokens) in ordered)
        {
            if (sequence.Position + tokens.Length > config.MaxPositionEmbeddings)
            {
                throw new InvalidOperationException($"{tokens.Length} more tokens exceed the model's {config.MaxPositionEmbeddings} positions.");
            }

            sequence.EnsureCapacity(sequence.Position + tokens.Length);
            if (sequence.Adapter is { } adapter)
            {
                if (groups.Count > 0 && ReferenceEquals(groups[^1].Adapter, adapter))
                {
                    groups[^1] = (adapter, groups[^1].Start, groups[^1].Count + tokens.Length);
                }
                else
                {
                    groups.Add((adapter, row, tokens.Length));
                }
            }

            for (var i = 0; i < tokens.Length; i++, row++)
            {
                var position = sequence.Position + i;
                _rows[row] = (sequence, position);
                if ((uint)tokens[i] >= (uint)config.VocabularySize)
                {
                    throw new ArgumentOutOfRangeException(nameof(work), $"Token {tokens[i]} is outside the vocabulary of {config.VocabularySize}.");
                }

                new ReadOnlySpan<float>(model.Embedding, tokens[i] * c, c).CopyTo(_x.AsSpan(row * c, c));
                Rope.Angles(model.InverseFrequencies, position, _cos.AsSpan(row * half, half), _sin.AsSpan(row * half, half));
            }
        }

        var eps = (float)config.RmsNormEpsilon;
        for (var l = 0; l < config.Layers; l++)
        {
            var weights = model.Layers[l];
            LlamaKernels.RmsNormForward(_x, weights.InputNorm, eps, _norm, _rstd, n, c);
            Project(l, LinearModule.Q, _norm, _q, n, groups);
            Project(l, LinearModule.K, _norm, _k, n, groups);
            Project(l, LinearModule.V, _norm, _v, n, groups);
            LlamaKernels.ForRows(n, 6L * n * (qd + kvd), (start, end) =>
            {
                for (var r = start; r < end; r++)
                {
                    var cos = new ReadOnlySpan<float>(_cos, r * half, half);
                    var sin = new ReadOnlySpan<float>(_sin, r * half, half);
                    Rope.Apply(_q.AsSpan(r * qd, qd), config.Heads, headDim, cos, sin);
                    Rope.Apply(_k.AsSpan(r * kvd, kvd), config.KeyValueHeads, headDim, cos, sin);
                }
            });
            for (var r = 0; r < n; r++)
            {
                var (sequence, position) = _rows[r];
                _k.AsSpan(r * kvd, kvd).CopyTo(sequence.Keys[l].AsSpan(position * kvd, kvd));
                _v.AsSpan(r * kvd, kvd).CopyTo(sequence.Values[l].AsSpan(position * kvd, kvd));
            }

            Attend(l, n);
            Project(l, LinearModule.O, _attention, _tmp, n, groups);
            TensorPrimitives.Add(_x.AsSpan(0, n * c), _tmp.AsSpan(0, n * c), _x.AsSpan(0, n * c));
            LlamaKernels.RmsNormForward(_x, weights.PostAttentionNorm, eps, _norm, _rstd, n, c);
            Project(l, LinearModule.Gate, _norm, _gate, n, groups);
            Project(l, LinearModule.Up, _norm, _up, n, groups);
            LlamaKernels.SwiGluForward(_gate, _up, _hidden, n, inter);
            Project(l, LinearModule.Down, _hidden, _tmp, n, groups);
            TensorPrimitives.Add(_x.AsSpan(0, n * c), _tmp.AsSpan(0, n * c), _x.AsSpan(0, n * c));
        }

        // Only each sequence's last row needs logits.
        row = 0;
        for (var s = 0; s < ordered.Count; s++)
        {
            row += ordered[s].Tokens.Length;
            _x.AsSpan((row - 1) * c, c).CopyTo(_last.AsSpan(s * c, c));
        }

        LlamaKernels.RmsNormForward(_last, model.FinalNorm, eps, _lastNorm, _rstd, ordered.Count, c);
        var v = config.VocabularySize;
        if (ordered.Count == 1 || ordered.Count > 16)
        {
            Gemm.Multiply(_lastNorm, c, false, model.OutputWeights, c, true, _logits, v, ordered.Count, v, c, 1f, 0f);
        }
        else
        {
            LlamaKernels.FewRowsTimesTransposed(_lastNorm, model.OutputWeights, _logits, ordered.Count, v, c);
        }
        for (var s = 0; s < ordered.Count; s++)
        {
            var (sequence, tokens) = ordered[s];
            _logits.AsSpan(s * v, v).CopyTo(sequence.Logits);
            sequence.Position += tokens.Length;
        }
    }

    private static long AdapterKey(LoraAdapter? adapter) => adapter is null ? -1 : System.Runtime.CompilerServices.RuntimeHelpers.GetHashCode(adapter);

    /// <summary>y = x·Wᵀ + b for every row in one GEMM, then each adapter group's s·(x·Aᵀ)·Bᵀ on its rows.</summary>
    private void Project(int layer, LinearModule module, float[] x, float[] y, int n, List<(LoraAdapter Adapter, int Start, int Count)> groups)
    {
        var linear = model.Layers[layer][module];
        LlamaKernels.LinearForward(linear, x, y, n);
        foreach (var (adapter, start, count) in groups)
        {
            if (adapter[layer, module] is not { } pair)
            {
                continue;
            }

            if (_u.Length < count * pair.Rank)
            {
                _u = new float[count * pair.Rank];
            }

            var u = _u.AsSpan(0, count * pair.Rank);
            Gemm.Multiply(x.AsSpan(start * pair.In), pair.In, false, pair.A, pair.In, true, u, pair.Rank, count, pair.Rank, pair.In, 1f, 0f);
            Gemm.Multiply(u, pair.Rank, false, pair.B, pair.Rank, true, y.AsSpan(start * pair.Out), pair.Out, count, pair.Out, pair.Rank, adapter.Scaling, 1f);
        }
    }

    /// <summary>Each row attends over its own sequence's cache up to its position (and within Mistral's window).</summary>
    private void Attend(int layer, int n)
    {
        var config = model.Config;
        var (heads, headDim, kvd) = (config.Heads, config.HeadDim, config.KeyValueDim);
        var group = heads / config.KeyValueHeads;
        var scale = 1f / MathF.Sqrt(headDim);
        long work = 0;
        for (var r = 0; r < n; r++)
        {
            work += (long)(_rows[r].Position + 1) * heads * headDim * 2;
        }

        void One(int rh, float[] scores)
        {
            var r = rh / heads;
            var h = rh % heads;
            var (sequence, position) = _rows[r];
            var first = config.SlidingWindow is { } window ? Math.Max(0, position - window + 1) : 0;
            var count = position - first + 1;
            var q = new ReadOnlySpan<float>(_q, (r * config.QueryDim) + (h * headDim), headDim);
            var keys = sequence.Keys[layer];
            var values = sequence.Values[layer];
            var offset = h / group * headDim;
            var s = scores.AsSpan(0, count);
            for (var j = 0; j < count; j++)
            {
                s[j] = TensorPrimitives.Dot(q, new ReadOnlySpan<float>(keys, ((first + j) * kvd) + offset, headDim)) * scale;
            }

            TensorPrimitives.SoftMax(s, s);
            var output = _attention.AsSpan((r * config.QueryDim) + (h * headDim), headDim);
            output.Clear();
            for (var j = 0; j < count; j++)
            {
                TensorPrimitives.MultiplyAdd(new ReadOnlySpan<float>(values, ((first + j) * kvd) + offset, headDim), s[j], output, output);
            }
        }

        var maxPositions = 0;
        for (var r = 0; r < n; r++)
        {
            maxPositions = Math.Max(maxPositions, _rows[r].Position + 1);
        }

        if (work < 1 << 16)
        {
            var scores = new float[maxPositions];
            for (var rh = 0; rh < n * heads; rh++)
            {
                One(rh, scores);
            }

            return;
        }

        Parallel.For(0, n * heads, () => new float[maxPositions], (rh, _, scores) =>
        {
            One(rh, scores);
            return scores;
        }, _ => { });
    }

    /// <summary>Buffers grow to the largest step seen and are reused: steady decoding allocates little.</summary>
    private void EnsureBuffers(int rows, int sequences)
    {
        var config = model.Config;
        var (c, qd, kvd, inter) = (config.HiddenSize, config.QueryDim, config.KeyValueDim, config.IntermediateSize);
        if (_rows.Length < rows)
        {
            _rows = new (DecodingSequence, int)[rows];
            _x = new float[rows * c];
            _norm = new float[rows * c];
            _q = new float[rows * qd];
            _k = new float[rows * kvd];
            _v = new float[rows * kvd];
            _attention = new float[rows * qd];
            _tmp = new float[rows * Math.Max(c, qd)];
            _gate = new float[rows * inter];
            _up = new float[rows * inter];
            _hidden = new float[rows * inter];
            _rstd = new float[Math.Max(rows, sequences)];
            _cos = new float[rows * config.HeadDim / 2];
            _sin = new float[rows * config.HeadDim / 2];
        }

        if (_last.Length < sequences * c)
        {
            _last = new float[sequences * c];
            _lastNorm = new float[sequences * c];
            _logits = new float[sequences * config.VocabularySize];
            _rstd = new float[Math.Max(_rstd.Length, sequences)];
        }
    }
}

/// <summary>How to sample: temperature 0 is greedy; top_p keeps the smallest set of tokens whose probability reaches it.</summary>
public sealed record GenerationOptions(int MaxNewTokens = 256, double Temperature = 0, double TopP = 1, int? Seed = null, IReadOnlyList<int>? StopTokenIds = null);

/// <summary>A prompt to continue, with its adapter (null: the base) and sampling options.</summary>
public sealed record GenerationRequest(int[] Prompt, LoraAdapter? Adapter, GenerationOptions Options);

/// <summary>The generated tokens (without the stop token) and why generation ended: "stop" or "length".</summary>
public sealed record GenerationOutput(int[] Tokens, string FinishReason);

/// <summary>Seeded sampling from logits, as transformers' temperature and top-p warpers do.</summary>
public sealed class TokenSampler(GenerationOptions options)
{
    private readonly Random _random = new(options.Seed ?? Environment.TickCount);
    private float[] _probabilities = [];
    private int[] _order = [];

    public int Sample(ReadOnlySpan<float> logits)
    {
        if (options.Temperature <= 0)
        {
            return TensorPrimitives.IndexOfMax(logits);
        }

        if (_probabilities.Length != logits.Length)
        {
            _probabilities = new float[logits.Length];
            _order = new int[logits.Length];
        }

        var p = _probabilities.AsSpan();
        TensorPrimitives.Multiply(logits, (float)(1 / options.Temperature), p);
        TensorPrimitives.SoftMax(p, p);
        var count = logits.Length;
        if (options.TopP < 1)
        {
            for (var i = 0; i < count; i++)
            {
                _order[i] = i;
            }

            // Descending probability, ties by id, so the kept set does not depend on the sort's stability.
            var probabilities = _probabilities;
            Array.Sort(_order, (a, b) => probabilities[b] != probabilities[a] ? probabilities[b].CompareTo(probabilities[a]) : a.CompareTo(b));
            double cumulative = 0;
            var kept = count;
            for (var k = 0; k < count; k++)
            {
                cumulative += p[_order[k]];
                if (cumulative >= options.TopP)
                {
                    kept = k + 1;
                    break;
                }
            }

            var draw = _random.NextDouble() * cumulative;
            for (var k = 0; k < kept; k++)
            {
                draw -= p[_order[k]];
                if (draw <= 0)
                {
                    return _order[k];
                }
            }

            return _order[kept - 1];
        }

        var target = _random.NextDouble();
        for (var i = 0; i < count; i++)
        {
            target -= p[i];
            if (target <= 0)
            {
                return i;
            }
        }

        return TensorPrimitives.IndexOfMax(logits);
    }
}

/// <summary>Generation for several requests at once over one base: one decoding step per token for all live sequences.</summary>
public static class Generator
{
    /// <summary>Runs every request to its end; onToken (request index, token) streams tokens as they are sampled.</summary>
    public static IReadOnlyList<GenerationOutput> Generate(LlamaModel model, IReadOnlyList<GenerationRequest> requests, Action<int, int>? onToken = null, CancellationToken cancellationToken = default)
    {
        var decoder = new KvCacheDecoder(model);
        var sequences = requests.Select(request => new DecodingSequence(model, request.Adapter)).ToArray();
        var samplers = requests.Select(request => new TokenSampler(request.Options)).ToArray();
        var produced = requests.Select(_ => new List<int>()).ToArray();
        var finish = new string?[requests.Count];
        var pending = requests.Select(request => request.Prompt).ToArray();
        while (true)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var live = Enumerable.Range(0, requests.Count).Where(i => finish[i] is null).ToList();
            if (live.Count == 0)
            {
                break;
            }

            decoder.Step(live.Select(i => (sequences[i], pending[i])).ToList());
            foreach (var i in live)
            {
                var options = requests[i].Options;
                var token = samplers[i].Sample(sequences[i].Logits);
                if (options.StopTokenIds?.Contains(token) == true)
                {
                    finish[i] = "stop";
                    continue;
                }

                produced[i].Add(token);
                onToken?.Invoke(i, token);
                if (produced[i].Count >= options.MaxNewTokens || sequences[i].Position + 1 > model.Config.MaxPositionEmbeddings)
                {
                    finish[i] = "length";
                    continue;
                }

                pending[i] = [token];
            }
        }

        return produced.Select((tokens, i) => new GenerationOutput([.. tokens], finish[i]!)).ToList();
    }
}
