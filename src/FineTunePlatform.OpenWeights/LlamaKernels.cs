using System.Numerics.Tensors;
using Gemm = FineTunePlatform.LocalModels.Gemm;

namespace FineTunePlatform.OpenWeights;

/// <summary>
/// The forward and backward of each operation of a Llama layer, side by side (after llm.c). Large matmuls go to
/// OpenBLAS; element-wise work is split across cores by rows, each row computed by one thread in a fixed order, so
/// results are reproducible however the work is scheduled. Base weights are frozen: backward passes compute input
/// gradients only, plus the LoRA pairs' gradients.
/// </summary>
internal static class LlamaKernels
{
    /// <summary>Rows per parallel work item: enough work per item that the fork/join pays for itself.</summary>
    private const int RowBlock = 8;

    /// <summary>Runs body(start, end) over [0, n) in fixed blocks, across cores when the work (≈ multiply-adds) is worth it.</summary>
    public static void ForRows(int n, long work, Action<int, int> body)
    {
        var blocks = (n + RowBlock - 1) / RowBlock;
        if (work < 1 << 15 || blocks == 1)
        {
            body(0, n);
            return;
        }

        Parallel.For(0, blocks, block => body(block * RowBlock, Math.Min(n, (block + 1) * RowBlock)));
    }

    // ---- linear (frozen base weight) ----

    /// <summary>Up to this many rows (a decoding step over a few sequences), y = x·Wᵀ uses <see cref="FewRowsTimesTransposed"/>.</summary>
    private const int FewRows = 16;

    /// <summary>Weight rows per work item of <see cref="FewRowsTimesTransposed"/>: small enough to stay in L1/L2 while every input row uses them.</summary>
    private const int WeightBlock = 32;

    /// <summary>
    /// y[n, out] = x[n, in] · W[out, in]ᵀ for a few rows: threads take blocks of weight rows and apply each block to
    /// every input row while it is in cache, so W is read from memory once per step. (This OpenBLAS packs all of W
    /// before a GEMM with few rows, which costs more than the product: a step of 8 sequences took 4× a step of one.)
    /// </summary>
    public static void FewRowsTimesTransposed(float[] x, float[] weight, float[] y, int n, int outFeatures, int inFeatures)
    {
        var blocks = (outFeatures + WeightBlock - 1) / WeightBlock;
        void Block(int block)
        {
            var end = Math.Min(outFeatures, (block + 1) * WeightBlock);
            for (var j = block * WeightBlock; j < end; j++)
            {
                var w = new ReadOnlySpan<float>(weight, j * inFeatures, inFeatures);
                for (var row = 0; row < n; row++)
                {
                    y[(row * outFeatures) + j] = TensorPrimitives.Dot(new ReadOnlySpan<float>(x, row * inFeatures, inFeatures), w);
                }
            }
        }

        if ((long)n * outFeatures * inFeatures < 1 << 17)
        {
            for (var block = 0; block < blocks; block++)
            {
                Block(block);
            }

            return;
        }

        Parallel.For(0, blocks, Block);
    }

    /// <summary>y[n, out] = x[n, in] · Wᵀ + b.</summary>
    public static void LinearForward(Linear linear, float[] x, float[] y, int n)
    {
        if (n > 1 && n <= FewRows)
        {
            FewRowsTimesTransposed(x, linear.Weight, y, n, linear.Out, linear.In);
        }
        else
        {
            Gemm.Multiply(x, linear.In, false, linear.Weight, linear.In, true, y, linear.Out, n, linear.Out, linear.In, 1f, 0f);
        }

        if (linear.Bias is { } bias)
        {
            for (var row = 0; row < n; row++)
            {
                var yRow = y.AsSpan(row * linear.Out, linear.Out);
                TensorPrimitives.Add(yRow, bias, yRow);
            }
        }
    }

    /// <summary>dx[n, in] (= or +=) dy[n, out] · W. No weight gradient: the base is frozen.</summary>
    public static void LinearBackward(Linear linear, ReadOnlySpan<float> dy, Span<float> dx, int n, bool accumulate) =>
        Gemm.Multiply(dy, linear.Out, false, linear.Weight, linear.In, false, dx, linear.In, n, linear.In, linear.Out, 1f, accumulate ? 1f : 0f);

    // ---- LoRA ----

    /// <summary>
    /// y += s · dropout(x) · Aᵀ · Bᵀ, keeping u = dropout(x)·Aᵀ [n, r] for the backward pass. xDropped is scratch
    /// [n, in] used only when dropout is on.
    /// </summary>
    public static void LoraForward(LoraPair pair, float scaling, in DropoutKey dropout, float[] x, Span<float> u, Span<float> y, float[] xDropped, int n)
    {
        var input = x;
        if (dropout.Active)
        {
            dropout.Apply(x, xDropped, n * pair.In);
            input = xDropped;
        }

        Gemm.Multiply(input, pair.In, false, pair.A, pair.In, true, u, pair.Rank, n, pair.Rank, pair.In, 1f, 0f);
        Gemm.Multiply(u, pair.Rank, false, pair.B, pair.Rank, true, y, pair.Out, n, pair.Out, pair.Rank, scaling, 1f);
    }

    /// <summary>
    /// Given dy: dB += s·dyᵀ·u, du = s·dy·B, dA += duᵀ·dropout(x), and (when dx is wanted) dx += dropout'(du·A).
    /// du and xDropped are scratch.
    /// </summary>
    public static void LoraBackward(LoraPair pair, LoraPair gradient, float scaling, in DropoutKey dropout, float[] x, ReadOnlySpan<float> u,
        ReadOnlySpan<float> dy, Span<float> dx, bool wantInputGradient, Span<float> du, float[] xDropped, int n)
    {
        var (r, inFeatures, outFeatures) = (pair.Rank, pair.In, pair.Out);
        Gemm.Multiply(dy, outFeatures, true, u, r, false, gradient.B, r, outFeatures, r, n, scaling, 1f);
        Gemm.Multiply(dy, outFeatures, false, pair.B, r, false, du, r, n, r, outFeatures, scaling, 0f);
        var input = x;
        if (dropout.Active)
        {
            dropout.Apply(x, xDropped, n * inFeatures);
            input = xDropped;
        }

        Gemm.Multiply(du, r, true, input, inFeatures, false, gradient.A, inFeatures, r, inFeatures, n, 1f, 1f);
        if (!wantInputGradient)
        {
            return;
        }

        if (!dropout.Active)
        {
            Gemm.Multiply(du, r, false, pair.A, inFeatures, false, dx, inFeatures, n, inFeatures, r, 1f, 1f);
            return;
        }

        // Dropout's backward is the same mask and scale applied to the gradient.
        Gemm.Multiply(du, r, false, pair.A, inFeatures, false, xDropped, inFeatures, n, inFeatures, r, 1f, 0f);
        dropout.Apply(xDropped, xDropped, n * inFeatures);
        TensorPrimitives.Add(dx[..(n * inFeatures)], xDropped.AsSpan(0, n * inFeatures), dx[..(n * inFeatures)]);
    }

    // ---- RMSNorm ----

    /// <summary>y = w ⊙ x / √(mean(x²) + ε) per row, keeping 1/√(mean(x²) + ε) per row.</summary>
    public static void RmsNormForward(float[] x, float[] weight, float epsilon, float[] y, float[] rstd, int n, int c)
    {
        ForRows(n, 3L * n * c, (start, end) =>
        {
            for (var row = start; row < end; row++)
            {
                var xRow = new ReadOnlySpan<float>(x, row * c, c);
                var s = 1f / MathF.Sqrt((TensorPrimitives.SumOfSquares(xRow) / c) + epsilon);
                rstd[row] = s;
                var yRow = y.AsSpan(row * c, c);
                TensorPrimitives.Multiply(xRow, s, yRow);
                TensorPrimitives.Multiply(yRow, weight, yRow);
            }
        });
    }

    /// <summary>
    /// dx (+)= s·(w⊙dy) − s³/C · x · Σ(w⊙dy⊙x), the gradient of y = w⊙x·s with s = (mean(x²)+ε)^−½. The weight is
    /// frozen, so there is no weight gradient.
    /// </summary>
    public static void RmsNormBackward(float[] x, float[] weight, float[] rstd, float[] dy, float[] dx, bool accumulate, int n, int c)
    {
        ForRows(n, 5L * n * c, (start, end) =>
        {
            Span<float> wdy = c <= 8192 ? stackalloc float[c] : new float[c];
            for (var row = start; row < end; row++)
            {
                var xRow = new ReadOnlySpan<float>(x, row * c, c);
                TensorPrimitives.Multiply(new ReadOnlySpan<float>(dy, row * c, c), weight, wdy);
                var s = rstd[row];
                var dot = TensorPrimitives.Dot(wdy, xRow);
                var k = -s * s * s * dot / c;
                var dxRow = dx.AsSpan(row * c, c);
                if (accumulate)
                {
                    TensorPrimitives.MultiplyAdd(wdy, s, dxRow, dxRow);
                    TensorPrimitives.MultiplyAdd(xRow, k, dxRow, dxRow);
                }
                else
                {
                    TensorPrimitives.Multiply(wdy, s, dxRow);
                    TensorPrimitives.MultiplyAdd(xRow, k, dxRow, dxRow);
                }
            }
        });
    }

    // ---- SwiGLU ----

    /// <summary>h = silu(g) ⊙ u with silu(g) = g·σ(g).</summary>
    public static void SwiGluForward(float[] gate, float[] up, float[] h, int n, int width)
    {
        ForRows(n, 8L * n * width, (start, end) =>
        {
            for (var row = start; row < end; row++)
            {
                var g = new ReadOnlySpan<float>(gate, row * width, width);
                var o = h.AsSpan(row * width, width);
                TensorPrimitives.Sigmoid(g, o);
                TensorPrimitives.Multiply(o, g, o);
                TensorPrimitives.Multiply(o, new ReadOnlySpan<float>(up, row * width, width), o);
            }
        });
    }

    /// <summary>dUp = dh ⊙ silu(g); dGate = dh ⊙ u ⊙ (σ(g) + silu(g)·(1 − σ(g))), vectorised per row.</summary>
    public static void SwiGluBackward(float[] gate, float[] up, float[] dh, float[] dGate, float[] dUp, int n, int width)
    {
        ForRows(n, 12L * n * width, (start, end) =>
        {
            var scratch = new float[2 * width];
            var sigmoid = scratch.AsSpan(0, width);
            var silu = scratch.AsSpan(width, width);
            for (var row = start; row < end; row++)
            {
                var offset = row * width;
                var g = new ReadOnlySpan<float>(gate, offset, width);
                var d = new ReadOnlySpan<float>(dh, offset, width);
                TensorPrimitives.Sigmoid(g, sigmoid);
                TensorPrimitives.Multiply(g, sigmoid, silu);
                TensorPrimitives.Multiply(d, silu, dUp.AsSpan(offset, width));
                // silu·(1 − σ) + σ, then ⊙ dh ⊙ u.
                var dg = dGate.AsSpan(offset, width);
                TensorPrimitives.Subtract(1f, sigmoid, dg);
                TensorPrimitives.MultiplyAdd(silu, dg, sigmoid, dg);
                TensorPrimitives.Multiply(dg, d, dg);
                TensorPrimitives.Multiply(dg, new ReadOnlySpan<float>(up, offset, width), dg);
            }
        });
    }

    // ---- attention ----

    /// <summary>
    /// Causal grouped-query attention over q [B·T, H·D] and k, v [B·T, KV·D] (rotary embeddings already applied):
    /// probabilities [B, H, T, T] are kept for the backward pass, output [B·T, H·D]. Query head h reads key/value
    /// head h / (H / KV). A sliding window W lets position i see positions i−W+1..i only (Mistral's rule).
    /// </summary>
    public static void AttentionForward(float[] q, float[] k, float[] v, float[] probabilities, float[] output, int b, int t, int heads, int kvHeads, int headDim, int? window)
    {
        var (qd, kvd) = (heads * headDim, kvHeads * headDim);
        var scale = 1f / MathF.Sqrt(headDim);
        var group = heads / kvHeads;
        for (var batch = 0; batch < b; batch++)
        {
            for (var h = 0; h < heads; h++)
            {
                var scores = probabilities.AsSpan(((batch * heads) + h) * t * t, t * t);
                Gemm.Multiply(q.AsSpan((batch * t * qd) + (h * headDim)), qd, false, k.AsSpan((batch * t * kvd) + (h / group * headDim)), kvd, true, scores, t, t, t, headDim, scale, 0f);
            }
        }

        ForRows(b * heads * t, 4L * b * heads * t * t, (start, end) =>
        {
            for (var row = start; row < end; row++)
            {
                var i = row % t;
                var p = probabilities.AsSpan(row * t, t);
                var first = window is { } w ? Math.Max(0, i - w + 1) : 0;
                var visible = p[first..(i + 1)];
                TensorPrimitives.SoftMax(visible, visible);
                p[..first].Clear();
                p[(i + 1)..].Clear();
            }
        });

        for (var batch = 0; batch < b; batch++)
        {
            for (var h = 0; h < heads; h++)
            {
                Gemm.Multiply(probabilities.AsSpan(((batch * heads) + h) * t * t, t * t), t, false, v.AsSpan((batch * t * kvd) + (h / group * headDim)), kvd, false, output.AsSpan((batch * t * qd) + (h * headDim)), qd, t, headDim, t, 1f, 0f);
            }
        }
    }

    /// <summary>
    /// From dOut [B·T, H·D]: dV = Pᵀ·dO, dP = dO·Vᵀ, dS = P ⊙ (dP − Σ_j P·dP)·scale, dQ = dS·K, dK = dSᵀ·Q, with the
    /// key/value heads' gradients summed over the query heads that share them. dProbabilities is scratch [B, H, T, T].
    /// </summary>
    public static void AttentionBackward(float[] q, float[] k, float[] v, float[] probabilities, float[] dOut, float[] dProbabilities,
        float[] dq, float[] dk, float[] dv, int b, int t, int heads, int kvHeads, int headDim)
    {
        var (qd, kvd) = (heads * headDim, kvHeads * headDim);
        var scale = 1f / MathF.Sqrt(headDim);
        var group = heads / kvHeads;
        Array.Clear(dk, 0, b * t * kvd);
        Array.Clear(dv, 0, b * t * kvd);
        for (var batch = 0; batch < b; batch++)
        {
            for (var h = 0; h < heads; h++)
            {
                var p = probabilities.AsSpan(((batch * heads) + h) * t * t, t * t);
                var dO = dOut.AsSpan((batch * t * qd) + (h * headDim));
                var kvOffset = (batch * t * kvd) + (h / group * headDim);
                Gemm.Multiply(p, t, true, dO, qd, false, dv.AsSpan(kvOffset), kvd, t, headDim, t, 1f, 1f);
                Gemm.Multiply(dO, qd, false, v.AsSpan(kvOffset), kvd, true, dProbabilities.AsSpan(((batch * heads) + h) * t * t, t * t), t, t, t, headDim, 1f, 0f);
            }
        }

        ForRows(b * heads * t, 4L * b * heads * t * t, (start, end) =>
        {
            for (var row = start; row < end; row++)
            {
                var p = new ReadOnlySpan<float>(probabilities, row * t, t);
                var dp = dProbabilities.AsSpan(row * t, t);
                var weighted = TensorPrimitives.Dot(p, dp);
                TensorPrimitives.Subtract(dp, weighted, dp);
                TensorPrimitives.Multiply(dp, p, dp);
                TensorPrimitives.Multiply(dp, scale, dp);
            }
        });

        for (var batch = 0; batch < b; batch++)
        {
            for (var h = 0; h < heads; h++)
            {
                var ds = dProbabilities.AsSpan(((batch * heads) + h) * t * t, t * t);
                var qOffset = (batch * t * qd) + (h * headDim);
                var kvOffset = (batch * t * kvd) + (h / group * headDim);
                Gemm.Multiply(ds, t, false, k.AsSpan(kvOffset), kvd, false, dq.AsSpan(qOffset), qd, t, headDim, t, 1f, 0f);
                Gemm.Multiply(ds, t, true, q.AsSpan(qOffset), qd, false, dk.AsSpan(kvOffset), kvd, t, headDim, t, 1f, 1f);
            }
        }
    }
}

/// <summary>
/// LoRA dropout without a stored mask: element e of module m in layer l is kept when a SplitMix64 hash of
/// (key, e) lands at or above p, and kept elements are scaled by 1/(1−p). The backward pass regenerates the same mask;
/// any thread gets the same answer for an element, so the result does not depend on scheduling. The reference tests
/// re-implement the hash to apply the same masks in PyTorch.
/// </summary>
internal readonly struct DropoutKey(ulong key, float probability)
{
    public static readonly DropoutKey None = new(0, 0);

    public bool Active => probability > 0;

    public float Probability => probability;

    /// <summary>The key of one module's mask in one step.</summary>
    public static DropoutKey For(long stepSeed, int layer, LinearModule module, float probability) =>
        probability <= 0 ? None : new DropoutKey(Mix(unchecked(((ulong)stepSeed * 1_000_003UL) + ((ulong)layer * 16UL) + (ulong)module)), probability);

    public static ulong Mix(ulong z)
    {
        unchecked
        {
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
            return z ^ (z >> 31);
        }
    }

    /// <summary>Whether element e survives: the top 24 bits of Mix(key + e·golden) as a uniform in [0, 1).</summary>
    public bool Keeps(long element) => (Mix(unchecked(key + ((ulong)element * 0x9E3779B97F4A7C15UL))) >> 40) * (1.0f / (1 << 24)) >= probability;

    /// <summary>destination = mask ⊙ source / (1 − p), in place when they are the same array; blocks across cores.</summary>
    public void Apply(float[] source, float[] destination, int length)
    {
        const int block = 16384;
        var self = this;
        var scale = 1f / (1f - probability);
        LlamaKernels.ForRows((length + block - 1) / block, 4L * length, (start, end) =>
        {
            for (var e = start * block; e < Math.Min(length, end * block); e++)
            {
                destination[e] = self.Keeps(e) ? source[e] * scale : 0f;
            }
        });
    }
}
