using System.Numerics.Tensors;

namespace FineTunePlatform.LocalModels;

/// <summary>
/// The forward and backward of each layer, written by hand (after llm.c). Every output element is computed by one
/// thread in a fixed order, so results are bit-for-bit reproducible however the work is scheduled.
/// Buffers are (array, offset) pairs so the work can be split across threads.
/// </summary>
internal static class Kernels
{
    private const float LayerNormEpsilon = 1e-5f;
    private static readonly float GeluScale = MathF.Sqrt(2f / MathF.PI);

    /// <summary>out[n, oc] = in[n, c] · W[oc, c]ᵀ + b[oc].</summary>
    public static void MatmulForward(float[] output, int outOffset, float[] input, int inOffset, float[] weights, int wOffset, int bOffset, bool hasBias, int n, int c, int oc)
    {
        if (n <= FewRows)
        {
            MatmulForwardFewRows(output, outOffset, input, inOffset, weights, wOffset, bOffset, hasBias, n, c, oc);
            return;
        }

        For(n, (long)n * c * oc, row =>
        {
            var x = new ReadOnlySpan<float>(input, inOffset + (row * c), c);
            var o = output.AsSpan(outOffset + (row * oc), oc);
            for (var j = 0; j < oc; j++)
            {
                o[j] = TensorPrimitives.Dot(x, new ReadOnlySpan<float>(weights, wOffset + (j * c), c)) + (hasBias ? weights[bOffset + j] : 0f);
            }
        });
    }

    /// <summary>Up to this many rows (decoding steps), MatmulForward splits the output columns instead of the rows.</summary>
    private const int FewRows = 64;

    /// <summary>Column blocks of this many weight rows: small enough to stay in L1/L2 while every input row uses them.</summary>
    private const int ColumnBlock = 16;

    /// <summary>
    /// The decoding case: few rows, so row parallelism would leave cores idle and each row would stream the whole weight
    /// matrix from memory again. Instead threads take blocks of output columns and apply each block's weights to every
    /// row while they are in cache. Each element is the same Dot as in the row-parallel path, so results are identical.
    /// </summary>
    private static void MatmulForwardFewRows(float[] output, int outOffset, float[] input, int inOffset, float[] weights, int wOffset, int bOffset, bool hasBias, int n, int c, int oc)
    {
        var blocks = (oc + ColumnBlock - 1) / ColumnBlock;
        void Block(int block)
        {
            var end = Math.Min(oc, (block + 1) * ColumnBlock);
            for (var row = 0; row < n; row++)
            {
                var x = new ReadOnlySpan<float>(input, inOffset + (row * c), c);
                var o = output.AsSpan(outOffset + (row * oc), oc);
                for (var j = block * ColumnBlock; j < end; j++)
                {
                    o[j] = TensorPrimitives.Dot(x, new ReadOnlySpan<float>(weights, wOffset + (j * c), c)) + (hasBias ? weights[bOffset + j] : 0f);
                }
            }
        }

        For(blocks, (long)n * c * oc, Block);
    }

    [ThreadStatic]
    private static bool t_singleThreaded;

    /// <summary>True inside a <see cref="SingleThreaded"/> scope on this thread.</summary>
    internal static bool IsSingleThreaded => t_singleThreaded;

    /// <summary>
    /// out[n, oc] = in[n, c] · W[oc, c]ᵀ + b[oc] through <see cref="Gemm"/>: the training pass's matmuls, whose many
    /// rows make a real GEMM several times faster than rows of dot products.
    /// </summary>
    public static void MatmulForwardGemm(float[] output, int outOffset, float[] input, int inOffset, float[] weights, int wOffset, int bOffset, bool hasBias, int n, int c, int oc)
    {
        if (hasBias)
        {
            var bias = new ReadOnlySpan<float>(weights, bOffset, oc);
            for (var row = 0; row < n; row++)
            {
                bias.CopyTo(output.AsSpan(outOffset + (row * oc), oc));
            }
        }

        Gemm.Multiply(input, inOffset, c, false, weights, wOffset, c, true, output, outOffset, oc, n, oc, c, beta: hasBias ? 1f : 0f);
    }

    /// <summary>
    /// Accumulates din += dout · W, dW += doutᵀ · in (both through <see cref="Gemm"/>), db += Σ dout over rows in order.
    /// </summary>
    public static void MatmulBackwardGemm(float[] dInput, int dInOffset, float[] dWeights, int dwOffset, int dbOffset, bool hasBias,
        float[] dOutput, int dOutOffset, float[] input, int inOffset, float[] weights, int wOffset, int n, int c, int oc)
    {
        Gemm.Multiply(dOutput, dOutOffset, oc, false, weights, wOffset, c, false, dInput, dInOffset, c, n, c, oc, beta: 1f);
        Gemm.Multiply(dOutput, dOutOffset, oc, true, input, inOffset, c, false, dWeights, dwOffset, c, oc, c, n, beta: 1f);
        if (hasBias)
        {
            var db = dWeights.AsSpan(dbOffset, oc);
            for (var row = 0; row < n; row++)
            {
                TensorPrimitives.Add(db, new ReadOnlySpan<float>(dOutput, dOutOffset + (row * oc), oc), db);
            }
        }
    }

    /// <summary>
    /// Runs the calling thread's kernels on that thread alone until disposed: for callers that already keep every core
    /// busy with their own work (the generation scheduler's lanes), where a fork/join would only add overhead.
    /// </summary>
    public static SingleThreadedScope SingleThreaded(bool enabled) => new(enabled);

    public readonly struct SingleThreadedScope : IDisposable
    {
        private readonly bool _previous;

        internal SingleThreadedScope(bool enabled)
        {
            _previous = t_singleThreaded;
            t_singleThreaded = enabled;
        }

        public void Dispose() => t_singleThreaded = _previous;
    }

    /// <summary>
    /// Runs body(0..count) across cores only when the work (in multiply-adds, roughly) pays for a fork/join: waking the
    /// pool costs tens of microseconds, more than a decoding step's small kernels take on one core.
    /// </summary>
    public static void For(int count, long work, Action<int> body)
    {
        if (work < 1 << 16 || t_singleThreaded)
        {
            for (var i = 0; i < count; i++)
            {
                body(i);
            }

            return;
        }

        Parallel.For(0, count, body);
    }

    /// <summary>Accumulates din += dout · W, dW += doutᵀ · in, db += Σ dout.</summary>
    public static void MatmulBackward(float[] dInput, int dInOffset, float[] dWeights, int dwOffset, int dbOffset, bool hasBias,
        float[] dOutput, int dOutOffset, float[] input, int inOffset, float[] weights, int wOffset, int n, int c, int oc)
    {
        Parallel.For(0, n, row =>
        {
            var din = dInput.AsSpan(dInOffset + (row * c), c);
            for (var j = 0; j < oc; j++)
            {
                var d = dOutput[dOutOffset + (row * oc) + j];
                TensorPrimitives.MultiplyAdd(new ReadOnlySpan<float>(weights, wOffset + (j * c), c), d, din, din);
            }
        });
        Parallel.For(0, oc, j =>
        {
            var dw = dWeights.AsSpan(dwOffset + (j * c), c);
            var bias = 0f;
            for (var row = 0; row < n; row++)
            {
                var d = dOutput[dOutOffset + (row * oc) + j];
                bias += d;
                TensorPrimitives.MultiplyAdd(new ReadOnlySpan<float>(input, inOffset + (row * c), c), d, dw, dw);
            }

            if (hasBias)
            {
                dWeights[dbOffset + j] += bias;
            }
        });
    }

    public static void LayerNormForward(float[] output, float[] mean, float[] rstd, float[] input, float[] parameters, int wOffset, int bOffset, int n, int c)
    {
        For(n, 4L * n * c, row =>
        {
            var x = new ReadOnlySpan<float>(input, row * c, c);
            var m = TensorPrimitives.Sum(x) / c;
            var variance = 0f;
            for (var i = 0; i < c; i++)
            {
                var diff = x[i] - m;
                variance += diff * diff;
            }

            var s = 1f / MathF.Sqrt((variance / c) + LayerNormEpsilon);
            var o = output.AsSpan(row * c, c);
            for (var i = 0; i < c; i++)
            {
                o[i] = ((x[i] - m) * s * parameters[wOffset + i]) + parameters[bOffset + i];
            }

            mean[row] = m;
            rstd[row] = s;
        });
    }

    public static void LayerNormBackward(float[] dInput, float[] dParameters, int dwOffset, int dbOffset, float[] dOutput, float[] input, float[] parameters, int wOffset, float[] mean, float[] rstd, int n, int c)
    {
        // Sequential over rows: the weight and bias gradients sum across rows in a fixed order.
        var dnorm = new float[c];
        for (var row = 0; row < n; row++)
        {
            var x = new ReadOnlySpan<float>(input, row * c, c);
            var dout = new ReadOnlySpan<float>(dOutput, row * c, c);
            float dnormMean = 0, dnormNormMean = 0;
            for (var i = 0; i < c; i++)
            {
                var norm = (x[i] - mean[row]) * rstd[row];
                dnorm[i] = parameters[wOffset + i] * dout[i];
                dnormMean += dnorm[i];
                dnormNormMean += dnorm[i] * norm;
            }

            dnormMean /= c;
            dnormNormMean /= c;
            var din = dInput.AsSpan(row * c, c);
            for (var i = 0; i < c; i++)
            {
                var norm = (x[i] - mean[row]) * rstd[row];
                dParameters[dbOffset + i] += dout[i];
                dParameters[dwOffset + i] += norm * dout[i];
                din[i] += (dnorm[i] - dnormMean - (norm * dnormNormMean)) * rstd[row];
            }
        }
    }

    /// <summary>
    /// Causal multi-head attention over qkv [B, T, 3C]; att keeps the softmax weights [B, H, T, T] (zero above the
    /// diagonal). Per (sequence, head): S = Q·Kᵀ·scale and out = P·V through <see cref="Gemm"/> on strided views of qkv
    /// (rows 3C apart), the softmax row by row over the causal prefix. The full T×T product costs twice the causal
    /// half's multiply-adds but runs at GEMM speed, far above one short dot product per (query, key).
    /// </summary>
    public static void AttentionForward(float[] output, float[] att, float[] qkv, int b, int t, int c, int heads)
    {
        var hs = c / heads;
        var scale = 1f / MathF.Sqrt(hs);
        Parallel.For(0, b * heads, bh =>
        {
            using var scope = SingleThreaded(true);
            var batch = bh / heads;
            var h = bh % heads;
            var q = (batch * t * 3 * c) + (h * hs);
            var scores = bh * t * t;
            Gemm.Multiply(qkv, q, 3 * c, false, qkv, q + c, 3 * c, true, att, scores, t, t, t, hs, alpha: scale);
            for (var i = 0; i < t; i++)
            {
                var row = att.AsSpan(scores + (i * t), t);
                TensorPrimitives.SoftMax(row[..(i + 1)], row[..(i + 1)]);
                row[(i + 1)..].Clear();
            }

            Gemm.Multiply(att, scores, t, false, qkv, q + (2 * c), 3 * c, false, output, (batch * t * c) + (h * hs), c, t, hs, t);
        });
    }

    /// <summary>
    /// One query's attention over `count` keys and values (key j at keyOffset + j·stride, value j at valueOffset +
    /// j·stride): weights[0..count) receive the softmax of the scaled scores, output the weighted sum of the values.
    /// The training pass and the KV-cached decoder both attend through this, so their results agree.
    /// </summary>
    public static void AttendOne(ReadOnlySpan<float> q, float[] keys, int keyOffset, float[] values, int valueOffset, int stride, int count, float scale,
        Span<float> weights, Span<float> output)
    {
        var hs = q.Length;
        var max = float.NegativeInfinity;
        for (var j = 0; j < count; j++)
        {
            weights[j] = TensorPrimitives.Dot(q, new ReadOnlySpan<float>(keys, keyOffset + (j * stride), hs)) * scale;
            max = MathF.Max(max, weights[j]);
        }

        var sum = 0f;
        for (var j = 0; j < count; j++)
        {
            weights[j] = MathF.Exp(weights[j] - max);
            sum += weights[j];
        }

        var inverse = 1f / sum;
        output.Clear();
        for (var j = 0; j < count; j++)
        {
            weights[j] *= inverse;
            TensorPrimitives.MultiplyAdd(new ReadOnlySpan<float>(values, valueOffset + (j * stride), hs), weights[j], output, output);
        }
    }

    /// <summary>
    /// The backward of <see cref="AttentionForward"/>, per (sequence, head) through <see cref="Gemm"/>:
    /// dP = dOut·Vᵀ, dV += Pᵀ·dOut, dS = P ⊙ (dP - rowsum(P ⊙ dP))·scale, dQ += dS·K, dK += dSᵀ·Q. P is zero above the
    /// diagonal, so dS is too. Each pair owns its slice of dQkv: no two threads write the same element.
    /// </summary>
    public static void AttentionBackward(float[] dQkv, float[] dOutput, float[] qkv, float[] att, int b, int t, int c, int heads)
    {
        var hs = c / heads;
        var scale = 1f / MathF.Sqrt(hs);
        Parallel.For(0, b * heads, bh =>
        {
            using var scope = SingleThreaded(true);
            var batch = bh / heads;
            var h = bh % heads;
            var q = (batch * t * 3 * c) + (h * hs);
            var dout = (batch * t * c) + (h * hs);
            var probabilities = bh * t * t;
            var dScores = System.Buffers.ArrayPool<float>.Shared.Rent(t * t);
            try
            {
                Gemm.Multiply(dOutput, dout, c, false, qkv, q + (2 * c), 3 * c, true, dScores, 0, t, t, t, hs);
                Gemm.Multiply(att, probabilities, t, true, dOutput, dout, c, false, dQkv, q + (2 * c), 3 * c, t, hs, t, beta: 1f);
                for (var i = 0; i < t; i++)
                {
                    var p = new ReadOnlySpan<float>(att, probabilities + (i * t), t);
                    var d = dScores.AsSpan(i * t, t);
                    var weighted = TensorPrimitives.Dot(p[..(i + 1)], d[..(i + 1)]);
                    TensorPrimitives.Subtract(d, weighted, d);
                    TensorPrimitives.Multiply(d, p, d);
                    TensorPrimitives.Multiply(d, scale, d);
                }

                Gemm.Multiply(dScores, 0, t, false, qkv, q + c, 3 * c, false, dQkv, q, 3 * c, t, hs, t, beta: 1f);
                Gemm.Multiply(dScores, 0, t, true, qkv, q, 3 * c, false, dQkv, q + c, 3 * c, t, hs, t, beta: 1f);
            }
            finally
            {
                System.Buffers.ArrayPool<float>.Shared.Return(dScores);
            }
        });
    }

    /// <summary>0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))), vectorised in cache-sized blocks (a scalar tanh per element
    /// cost a sixth of a decoding step).</summary>
    public static void GeluForward(float[] output, float[] input, int n)
    {
        const int block = 4096;
        void Block(int index)
        {
            var start = index * block;
            var length = Math.Min(block, n - start);
            var x = new ReadOnlySpan<float>(input, start, length);
            var o = output.AsSpan(start, length);
            TensorPrimitives.Multiply(x, x, o);
            TensorPrimitives.Multiply(o, x, o);
            TensorPrimitives.MultiplyAdd(o, 0.044715f, x, o);
            TensorPrimitives.Multiply(o, GeluScale, o);
            TensorPrimitives.Tanh(o, o);
            TensorPrimitives.Add(o, 1f, o);
            TensorPrimitives.Multiply(o, x, o);
            TensorPrimitives.Multiply(o, 0.5f, o);
        }

        For((n + block - 1) / block, 8L * n, Block);
    }

    /// <summary>
    /// dInput += gelu'(x) · dOutput, vectorised in blocks like the forward (a scalar tanh per element was a large part
    /// of a training step). gelu'(x) = 0.5·(1 + t) + 0.5·x·(1 - t²)·√(2/π)·(1 + 3·0.044715·x²) with t = tanh(inner).
    /// </summary>
    public static void GeluBackward(float[] dInput, float[] input, float[] dOutput, int n)
    {
        const int block = 4096;
        void Block(int index)
        {
            var start = index * block;
            var length = Math.Min(block, n - start);
            Span<float> tanh = stackalloc float[length];
            Span<float> square = stackalloc float[length];
            Span<float> local = stackalloc float[length];
            var x = new ReadOnlySpan<float>(input, start, length);
            TensorPrimitives.Multiply(x, x, square);
            // inner = √(2/π)·(x + 0.044715·x³) = √(2/π)·x·(1 + 0.044715·x²)
            TensorPrimitives.Multiply(square, 0.044715f, tanh);
            TensorPrimitives.Add(tanh, 1f, tanh);
            TensorPrimitives.Multiply(tanh, x, tanh);
            TensorPrimitives.Multiply(tanh, GeluScale, tanh);
            TensorPrimitives.Tanh(tanh, tanh);
            // local = 0.5·x·(1 - t²)·√(2/π)·(1 + 3·0.044715·x²) + 0.5·(1 + t)
            TensorPrimitives.Multiply(square, 3f * 0.044715f, square);
            TensorPrimitives.Add(square, 1f, square);
            TensorPrimitives.Multiply(tanh, tanh, local);
            TensorPrimitives.Subtract(1f, local, local);
            TensorPrimitives.Multiply(local, square, local);
            TensorPrimitives.Multiply(local, x, local);
            TensorPrimitives.Multiply(local, 0.5f * GeluScale, local);
            TensorPrimitives.MultiplyAdd(tanh, 0.5f, local, local);
            TensorPrimitives.Add(local, 0.5f, local);
            var din = dInput.AsSpan(start, length);
            TensorPrimitives.MultiplyAdd(local, new ReadOnlySpan<float>(dOutput, start, length), din, din);
        }

        For((n + block - 1) / block, 16L * n, Block);
    }

    /// <summary>
    /// Softmax of logits [N, V] in place into probabilities, and the weighted cross-entropy against targets: the mean
    /// over the positions' weights (assistant tokens 1, everything else 0). Returns the loss and how many of the
    /// weighted positions the model predicts exactly (argmax = target).
    /// </summary>
    public static (double Loss, float WeightSum, int Correct, int Counted) SoftmaxCrossEntropy(float[] probs, float[] logits, int[] targets, float[] weights, int n, int v)
    {
        double loss = 0;
        float weightSum = 0;
        var correct = 0;
        var counted = 0;
        for (var i = 0; i < n; i++)
        {
            var row = logits.AsSpan(i * v, v);
            var p = probs.AsSpan(i * v, v);
            TensorPrimitives.SoftMax(row, p);
            if (weights[i] == 0)
            {
                continue;
            }

            loss -= weights[i] * Math.Log(Math.Max(p[targets[i]], 1e-30f));
            weightSum += weights[i];
            counted++;
            correct += TensorPrimitives.IndexOfMax(row) == targets[i] ? 1 : 0;
        }

        return (weightSum > 0 ? loss / weightSum : 0, weightSum, correct, counted);
    }

    /// <summary>dlogits = (p - onehot(target)) · w / Σw.</summary>
    public static void SoftmaxCrossEntropyBackward(float[] dLogits, float[] probs, int[] targets, float[] weights, float weightSum, int n, int v)
    {
        if (weightSum == 0)
        {
            return;
        }

        Parallel.For(0, n, i =>
        {
            var scale = weights[i] / weightSum;
            var d = dLogits.AsSpan(i * v, v);
            if (scale == 0)
            {
                return;
            }

            TensorPrimitives.Multiply(new ReadOnlySpan<float>(probs, i * v, v), scale, d);
            d[targets[i]] -= scale;
        });
    }
}
