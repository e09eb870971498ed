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

    /// <summary>Causal multi-head attention over qkv [B, T, 3C]; att keeps the softmax weights [B, H, T, T].</summary>
    public static void AttentionForward(float[] output, float[] att, float[] qkv, int b, int t, int c, int heads)
    {
        var hs = c / heads;
        var scale = 1f / MathF.Sqrt(hs);
        Parallel.For(0, b * heads, bh =>
        {
            var batch = bh / heads;
            var h = bh % heads;
            for (var i = 0; i < t; i++)
            {
                var row = att.AsSpan(((bh * t) + i) * t, t);
                var first = batch * t * 3 * c;
                AttendOne(new ReadOnlySpan<float>(qkv, (((batch * t) + i) * 3 * c) + (h * hs), hs), qkv, first + c + (h * hs), qkv, first + (2 * c) + (h * hs),
                    3 * c, i + 1, scale, row, output.AsSpan((((batch * t) + i) * c) + (h * hs), hs));
                row[(i + 1)..].Clear();
            }
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

    public static void AttentionBackward(float[] dQkv, float[] dOutput, float[] qkv, float[] att, int b, int t, int c, int heads)
    {
        var hs = c / heads;
        var scale = 1f / MathF.Sqrt(hs);
        Parallel.For(0, b * heads, bh =>
        {
            // Each (batch, head) pair owns its slice of dQkv: no two threads write the same element.
            var batch = bh / heads;
            var h = bh % heads;
            var dAtt = new float[t];
            for (var i = 0; i < t; i++)
            {
                var row = new ReadOnlySpan<float>(att, ((bh * t) + i) * t, t);
                var dout = new ReadOnlySpan<float>(dOutput, (((batch * t) + i) * c) + (h * hs), hs);
                for (var j = 0; j <= i; j++)
                {
                    var vOffset = (((batch * t) + j) * 3 * c) + (2 * c) + (h * hs);
                    dAtt[j] = TensorPrimitives.Dot(dout, new ReadOnlySpan<float>(qkv, vOffset, hs));
                    var dv = dQkv.AsSpan(vOffset, hs);
                    TensorPrimitives.MultiplyAdd(dout, row[j], dv, dv);
                }

                var weighted = 0f;
                for (var j = 0; j <= i; j++)
                {
                    weighted += row[j] * dAtt[j];
                }

                var qOffset = (((batch * t) + i) * 3 * c) + (h * hs);
                var dq = dQkv.AsSpan(qOffset, hs);
                for (var j = 0; j <= i; j++)
                {
                    var dPre = row[j] * (dAtt[j] - weighted) * scale;
                    var kOffset = (((batch * t) + j) * 3 * c) + c + (h * hs);
                    TensorPrimitives.MultiplyAdd(new ReadOnlySpan<float>(qkv, kOffset, hs), dPre, dq, dq);
                    var dk = dQkv.AsSpan(kOffset, hs);
                    TensorPrimitives.MultiplyAdd(new ReadOnlySpan<float>(qkv, qOffset, hs), dPre, dk, dk);
                }
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

    public static void GeluBackward(float[] dInput, float[] input, float[] dOutput, int n)
    {
        for (var i = 0; i < n; i++)
        {
            var x = input[i];
            var inner = GeluScale * (x + (0.044715f * x * x * x));
            var tanh = MathF.Tanh(inner);
            var sech2 = 1f - (tanh * tanh);
            var local = (0.5f * (1f + tanh)) + (0.5f * x * sech2 * GeluScale * (1f + (3f * 0.044715f * x * x)));
            dInput[i] += local * dOutput[i];
        }
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
