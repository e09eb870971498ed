namespace FineTunePlatform.LocalModels;

/// <summary>The shape of a transformer and its tokenizer: published as a base model under its name.</summary>
public sealed record ModelPreset(string Name, int ContextLength, int Layers, int Heads, int Channels)
{
    /// <summary>The byte tokenizer unless set: models trained before BPE, and the tests' tiny shapes, use it.</summary>
    public ChatTokenizer Tokenizer { get; init; } = ChatTokenizer.ByteLevel;

    public int VocabularySize => Tokenizer.VocabularySize;

    public int HeadSize => Channels / Heads;

    public long ParameterCount => ParameterLayout.For(this).Total;
}

public static class ModelPresets
{
    /// <summary>
    /// The smallest built-in base: fine-tunes 100 chat examples in seconds on two cores (tests, demos, small
    /// classifiers and extractors). 512 BPE tokens hold a system prompt and a few turns (~1,500 characters of English).
    /// </summary>
    public static readonly ModelPreset Nano = new("local-nano", ContextLength: 512, Layers: 2, Heads: 4, Channels: 128) { Tokenizer = ChatTokenizer.BuiltIn };

    /// <summary>A few million parameters, 1,024 BPE tokens of context.</summary>
    public static readonly ModelPreset Small = new("local-small", ContextLength: 1024, Layers: 4, Heads: 8, Channels: 256) { Tokenizer = ChatTokenizer.BuiltIn };

    public static IReadOnlyList<ModelPreset> All { get; } = [Nano, Small];

    public static bool TryGet(string name, out ModelPreset preset)
    {
        preset = All.FirstOrDefault(candidate => candidate.Name == name)!;
        return preset is not null;
    }

    /// <summary>
    /// The weights a preset's base model starts from: the project's own pre-trained weights shipped in this assembly
    /// (Resources/{name}.ftpmodel, built by src/FineTunePlatform.LocalModels.Pretraining), or GPT-2 initialisation
    /// from seed 0 for a shape that has none. A new copy on every call.
    /// </summary>
    public static TransformerModel LoadBase(ModelPreset preset)
    {
        using var stream = typeof(ModelPresets).Assembly.GetManifestResourceStream(BaseResource(preset.Name));
        if (stream is null)
        {
            return TransformerModel.Create(preset, seed: 0);
        }

        var model = Checkpoint.Load(stream).Model;
        return model.Preset == preset
            ? model
            : throw new InvalidDataException($"The shipped base weights of {preset.Name} are for another shape or tokenizer ({model.Preset}); rebuild them with the pre-training tool.");
    }

    /// <summary>Whether a preset ships pre-trained weights (false: it starts from random weights).</summary>
    public static bool IsPretrained(ModelPreset preset) => typeof(ModelPresets).Assembly.GetManifestResourceInfo(BaseResource(preset.Name)) is not null;

    internal static string BaseResource(string name) => $"FineTunePlatform.LocalModels.Resources.{name}.ftpmodel";
}
