namespace FineTunePlatform.LocalModels;

/// <summary>
/// A decoder-only transformer: token and position embeddings, pre-norm blocks of causal multi-head attention and a
/// GELU MLP, a final norm, and the output projection tied to the token embedding. Its weights are one flat array.
/// </summary>
public sealed class TransformerModel
{
    internal TransformerModel(ModelPreset preset, float[] parameters)
    {
        Preset = preset;
        Layout = ParameterLayout.For(preset);
        if (parameters.Length != Layout.Total)
        {
            throw new ArgumentException($"{preset.Name} has {Layout.Total} parameters, not {parameters.Length}.", nameof(parameters));
        }

        Parameters = parameters;
    }

    public ModelPreset Preset { get; }

    internal ParameterLayout Layout { get; }

    internal float[] Parameters { get; }

    /// <summary>GPT-2's initialisation: N(0, 0.02), residual projections scaled by 1/√(2·layers), norms at 1 and 0.</summary>
    public static TransformerModel Create(ModelPreset preset, int seed)
    {
        var layout = ParameterLayout.For(preset);
        var parameters = new float[layout.Total];
        var random = new Random(seed);
        var c = preset.Channels;
        void Normal(int offset, int count, float std)
        {
            for (var i = 0; i < count; i++)
            {
                // Box-Muller: deterministic for a seed, on every machine.
                var u1 = 1.0 - random.NextDouble();
                var u2 = random.NextDouble();
                parameters[offset + i] = (float)(std * Math.Sqrt(-2.0 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2));
            }
        }

        var residualStd = 0.02f / MathF.Sqrt(2 * preset.Layers);
        Normal(layout.TokenEmbedding, preset.VocabularySize * c, 0.02f);
        Normal(layout.PositionEmbedding, preset.ContextLength * c, 0.01f);
        foreach (var layer in layout.Layers)
        {
            Array.Fill(parameters, 1f, layer.Norm1Weight, c);
            Array.Fill(parameters, 1f, layer.Norm2Weight, c);
            Normal(layer.QkvWeight, 3 * c * c, 0.02f);
            Normal(layer.ProjWeight, c * c, residualStd);
            Normal(layer.FcWeight, 4 * c * c, 0.02f);
            Normal(layer.FcProjWeight, 4 * c * c, residualStd);
        }

        Array.Fill(parameters, 1f, layout.FinalNormWeight, c);
        return new TransformerModel(preset, parameters);
    }

    public TransformerModel Clone() => new(Preset, (float[])Parameters.Clone());
}
