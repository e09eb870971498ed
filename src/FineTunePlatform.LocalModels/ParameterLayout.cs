namespace FineTunePlatform.LocalModels;

/// <summary>
/// Where each tensor lives in the one flat parameter array (and, identically, in the gradient and optimizer arrays).
/// Matrices are stored one row per output feature, so every matmul is a run of contiguous dot products.
/// </summary>
internal sealed class ParameterLayout
{
    public int TokenEmbedding { get; private init; }      // [V, C], also the output projection (tied)
    public int PositionEmbedding { get; private init; }   // [T, C]
    public LayerOffsets[] Layers { get; private init; } = [];
    public int FinalNormWeight { get; private init; }     // [C]
    public int FinalNormBias { get; private init; }       // [C]
    public int Total { get; private init; }

    internal sealed record LayerOffsets(
        int Norm1Weight, int Norm1Bias,       // [C]
        int QkvWeight, int QkvBias,           // [3C, C], [3C]
        int ProjWeight, int ProjBias,         // [C, C], [C]
        int Norm2Weight, int Norm2Bias,       // [C]
        int FcWeight, int FcBias,             // [4C, C], [4C]
        int FcProjWeight, int FcProjBias);    // [C, 4C], [C]

    public static ParameterLayout For(ModelPreset preset)
    {
        var c = preset.Channels;
        var offset = 0;
        int Take(int size)
        {
            var start = offset;
            offset += size;
            return start;
        }

        var tokenEmbedding = Take(preset.VocabularySize * c);
        var positionEmbedding = Take(preset.ContextLength * c);
        var layers = new LayerOffsets[preset.Layers];
        for (var l = 0; l < preset.Layers; l++)
        {
            layers[l] = new LayerOffsets(
                Take(c), Take(c),
                Take(3 * c * c), Take(3 * c),
                Take(c * c), Take(c),
                Take(c), Take(c),
                Take(4 * c * c), Take(4 * c),
                Take(4 * c * c), Take(c));
        }

        var finalWeight = Take(c);
        var finalBias = Take(c);
        return new ParameterLayout
        {
            TokenEmbedding = tokenEmbedding,
            PositionEmbedding = positionEmbedding,
            Layers = layers,
            FinalNormWeight = finalWeight,
            FinalNormBias = finalBias,
            Total = offset,
        };
    }
}
