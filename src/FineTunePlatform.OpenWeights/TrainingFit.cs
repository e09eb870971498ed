using FineTunePlatform.LocalModels;

namespace FineTunePlatform.OpenWeights;

/// <summary>
/// How a training file's examples fit an imported model's training length, counted with the model's own tokenizer
/// and chat template. LoRA training cuts a sequence beyond the training length at its end (the targets are
/// tokens[1..length]), so an example whose weighted tokens all lie beyond it teaches nothing. The worker counts what
/// it trains and charges with this, and the training service the estimate it shows before training, so the estimate
/// is the charge: every token of every example, as fitted, once per epoch.
/// </summary>
public sealed class TrainingFit(int trainingLength)
{
    /// <summary>How many lines of examples without learned tokens are listed (all are counted).</summary>
    public const int ListedLines = 10;

    private readonly List<long> _linesWithoutLearnedTokens = [];

    public int TrainingLength { get; } = trainingLength;

    public long Examples { get; private set; }

    /// <summary>Examples with a sequence longer than the training length: its end is cut.</summary>
    public long ExamplesTruncated { get; private set; }

    /// <summary>Examples with a sequence that keeps no weighted token within the training length.</summary>
    public long ExamplesWithoutLearnedTokens { get; private set; }

    public IReadOnlyList<long> LinesWithoutLearnedTokens => _linesWithoutLearnedTokens;

    public long TokensPerEpoch { get; private set; }

    public bool NothingToLearn => ExamplesWithoutLearnedTokens >= Examples;

    /// <summary>The length an imported model trains at: the platform's limit, within the model's context.</summary>
    public static int LengthFor(int contextLength, int platformLimit) => Math.Max(16, Math.Min(contextLength, platformLimit));

    /// <summary>One example: a supervised example's sequence, or a DPO pair's two.</summary>
    public void Add(long line, params ReadOnlySpan<TrainingSequence> sequences)
    {
        Examples++;
        bool truncated = false, unlearned = false;
        foreach (var sequence in sequences)
        {
            TokensPerEpoch += Math.Min(sequence.Tokens.Length, TrainingLength + 1);
            truncated |= sequence.Tokens.Length > TrainingLength + 1;
            unlearned |= !sequence.Weights.Skip(1).Take(TrainingLength).Any(weight => weight > 0);
        }

        ExamplesTruncated += truncated ? 1 : 0;
        if (unlearned)
        {
            ExamplesWithoutLearnedTokens++;
            if (_linesWithoutLearnedTokens.Count < ListedLines)
            {
                _linesWithoutLearnedTokens.Add(line);
            }
        }
    }

    /// <summary>A sentence for the report and the job's events; empty when every example fits.</summary>
    public string Describe(string model)
    {
        if (Examples == 0)
        {
            return "The file has no examples.";
        }

        var parts = new List<string>();
        if (ExamplesTruncated > 0)
        {
            parts.Add($"{ExamplesTruncated} of {Examples} examples are longer than {model}'s training length of {TrainingLength} tokens; their end is cut in training");
        }

        if (ExamplesWithoutLearnedTokens > 0)
        {
            parts.Add(NothingToLearn
                ? $"no example has an assistant token left to learn within {model}'s training length of {TrainingLength} tokens: a job on {model} would learn nothing"
                : $"{ExamplesWithoutLearnedTokens} examples have no assistant token left to learn (lines {string.Join(", ", LinesWithoutLearnedTokens)}{(ExamplesWithoutLearnedTokens > LinesWithoutLearnedTokens.Count ? ", ..." : "")})");
        }

        return parts.Count == 0 ? "" : string.Join("; ", parts) + ".";
    }
}

/// <summary>Examples as an imported model trains on them: rendered with its chat template and tokenized with its tokenizer.</summary>
public static class OpenWeightsExamples
{
    /// <summary>Throws ArgumentException when the template cannot render the conversation so that its answers can be located.</summary>
    public static TrainingSequence Encode(ChatFormatter chat, IReadOnlyList<ChatTurn> turns) =>
        chat.EncodeForTraining([.. turns.Select(turn => new ChatMessage(turn.Role, turn.Content, turn.Weight))]);

    /// <summary>A DPO pair: the prompt's turns are context only (weight 0), then each answer.</summary>
    public static PreferencePair Encode(ChatFormatter chat, PreferenceExample example) => new(
        Encode(chat, [.. example.Prompt.Select(turn => turn with { Weight = 0 }), .. example.Preferred]),
        Encode(chat, [.. example.Prompt.Select(turn => turn with { Weight = 0 }), .. example.NonPreferred]));
}
