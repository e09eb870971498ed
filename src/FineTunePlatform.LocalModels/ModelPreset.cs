namespace FineTunePlatform.LocalModels;

/// <summary>The shape of a transformer: published as a base model under its name.</summary>
public sealed record ModelPreset(string Name, int ContextLength, int Layers, int Heads, int Channels)
{
    public int VocabularySize => ChatTokens.VocabularySize;

    public int HeadSize => Channels / Heads;

    public long ParameterCount => ParameterLayout.For(this).Total;
}

public static class ModelPresets
{
    /// <summary>Trains a 40-example dataset for a few epochs in seconds: for tests and demos.</summary>
    public static readonly ModelPreset Nano = new("local-nano", ContextLength: 128, Layers: 2, Heads: 4, Channels: 64);

    /// <summary>A few million parameters.</summary>
    public static readonly ModelPreset Small = new("local-small", ContextLength: 256, Layers: 4, Heads: 8, Channels: 256);

    public static IReadOnlyList<ModelPreset> All { get; } = [Nano, Small];

    public static bool TryGet(string name, out ModelPreset preset)
    {
        preset = All.FirstOrDefault(candidate => candidate.Name == name)!;
        return preset is not null;
    }
}
