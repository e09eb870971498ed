namespace FineTunePlatform.LocalModels.Tests;

/// <summary>
/// The model's loss written again, independently and naively, in float64: plain loops over the same parameter
/// layout (llm.c conventions: weights [out, in], qkv per token as q | k | v with heads in contiguous slices, tanh GELU,
/// layer norm with ε 1e-5, tied output). Finite differences of this function are exact to ~1e-9, so they check the
/// float32 backward pass without float32's own rounding in the reference.
/// </summary>
internal static class Float64Reference
{
    public static double Loss(double[] p, ModelPreset preset, ParameterLayout layout, int batch, int length, int[] tokens, int[] targets, float[] weights)
    {
        var c = preset.Channels;
        var v = preset.VocabularySize;
        var heads = preset.Heads;
        var hs = c / heads;
        var n = batch * length;
        var x = new double[n][];
        for (var i = 0; i < n; i++)
        {
            x[i] = new double[c];
            for (var k = 0; k < c; k++)
            {
                x[i][k] = p[layout.TokenEmbedding + (tokens[i] * c) + k] + p[layout.PositionEmbedding + ((i % length) * c) + k];
            }
        }

        foreach (var o in layout.Layers)
        {
            var qkv = x.Select(row => Linear(p, LayerNorm(p, row, o.Norm1Weight, o.Norm1Bias), o.QkvWeight, o.QkvBias, 3 * c)).ToArray();
            var attended = new double[n][];
            for (var i = 0; i < n; i++)
            {
                attended[i] = new double[c];
                var rowStart = i - (i % length);
                for (var h = 0; h < heads; h++)
                {
                    var scores = new double[(i - rowStart) + 1];
                    for (var j = rowStart; j <= i; j++)
                    {
                        double dot = 0;
                        for (var d = 0; d < hs; d++)
                        {
                            dot += qkv[i][(h * hs) + d] * qkv[j][c + (h * hs) + d];
                        }

                        scores[j - rowStart] = dot / Math.Sqrt(hs);
                    }

                    var probabilities = Softmax(scores);
                    for (var j = rowStart; j <= i; j++)
                    {
                        for (var d = 0; d < hs; d++)
                        {
                            attended[i][(h * hs) + d] += probabilities[j - rowStart] * qkv[j][(2 * c) + (h * hs) + d];
                        }
                    }
                }
            }

            for (var i = 0; i < n; i++)
            {
                var projected = Linear(p, attended[i], o.ProjWeight, o.ProjBias, c);
                var residual = x[i].Zip(projected, (a, b) => a + b).ToArray();
                var hidden = Linear(p, LayerNorm(p, residual, o.Norm2Weight, o.Norm2Bias), o.FcWeight, o.FcBias, 4 * c).Select(Gelu).ToArray();
                var mlp = Linear(p, hidden, o.FcProjWeight, o.FcProjBias, c);
                x[i] = residual.Zip(mlp, (a, b) => a + b).ToArray();
            }
        }

        double loss = 0, weightSum = 0;
        for (var i = 0; i < n; i++)
        {
            if (weights[i] == 0)
            {
                continue;
            }

            var final = LayerNorm(p, x[i], layout.FinalNormWeight, layout.FinalNormBias);
            var logits = new double[v];
            for (var token = 0; token < v; token++)
            {
                for (var k = 0; k < c; k++)
                {
                    logits[token] += final[k] * p[layout.TokenEmbedding + (token * c) + k];
                }
            }

            loss -= weights[i] * Math.Log(Softmax(logits)[targets[i]]);
            weightSum += weights[i];
        }

        return loss / weightSum;
    }

    private static double[] LayerNorm(double[] p, double[] input, int weight, int bias)
    {
        var mean = input.Average();
        var variance = input.Sum(value => (value - mean) * (value - mean)) / input.Length;
        var rstd = 1 / Math.Sqrt(variance + 1e-5);
        return input.Select((value, k) => ((value - mean) * rstd * p[weight + k]) + p[bias + k]).ToArray();
    }

    private static double[] Linear(double[] p, double[] input, int weight, int bias, int outputs)
    {
        var output = new double[outputs];
        for (var o = 0; o < outputs; o++)
        {
            double sum = p[bias + o];
            for (var k = 0; k < input.Length; k++)
            {
                sum += input[k] * p[weight + (o * input.Length) + k];
            }

            output[o] = sum;
        }

        return output;
    }

    private static double Gelu(double value) => 0.5 * value * (1 + Math.Tanh(Math.Sqrt(2 / Math.PI) * (value + (0.044715 * value * value * value))));

    private static double[] Softmax(double[] values)
    {
        var max = values.Max();
        var exps = values.Select(value => Math.Exp(value - max)).ToArray();
        var total = exps.Sum();
        return exps.Select(value => value / total).ToArray();
    }
}
