namespace FineTunePlatform.LocalModels;

/// <summary>How one example fits a model's context: its tokens, its learned (assistant) tokens, and what fitting kept.</summary>
public sealed record ExampleFit(int Tokens, int LearnedTokens, int LearnedTokensKept)
{
    /// <summary>Longer than the context: its beginning was cut.</summary>
    public bool Truncated { get; init; }

    /// <summary>Nothing to learn within the context (every assistant token cut, or none to begin with).</summary>
    public bool NothingToLearn => LearnedTokensKept == 0;
}

/// <summary>What fitting a set of examples to a model's context did: the counts the job, the worker and the dataset report show.</summary>
public sealed record ContextFit(string Model, int ContextLength, int Examples, int Truncated, int WithoutLearnedTokens, long Tokens, long LearnedTokensKept,
    IReadOnlyList<int> FirstWithoutLearnedTokens)
{
    /// <summary>No example has a token left to learn: training would change nothing.</summary>
    public bool NothingToLearn => WithoutLearnedTokens >= Examples;
}

/// <summary>
/// Fits rendered examples to a model's context. A sequence longer than the context keeps its end, as generation keeps
/// the end of a long prompt: the last turns (the answer being learned) survive and the start (an early turn, a long
/// system prompt) is cut. An example can still lose every learned token (its last assistant answers alone exceed the
/// context, or it has none of weight 1): callers report those, never train on them silently.
/// </summary>
public static class ContextWindow
{
    /// <summary>The last contextLength + 1 tokens (inputs and the next token of each) and their weights.</summary>
    public static (int[] Tokens, float[] Weights) Fit((int[] Tokens, float[] LossWeights) rendered, int contextLength)
    {
        var (tokens, weights) = rendered;
        if (tokens.Length <= contextLength + 1)
        {
            return (tokens, weights);
        }

        var start = tokens.Length - (contextLength + 1);
        return (tokens[start..], weights[start..]);
    }

    /// <summary>One example: rendered with the preset's tokenizer and fitted to its context.</summary>
    public static ExampleFit Check(ModelPreset preset, IReadOnlyList<ChatTurn> messages) => Check(preset.Tokenizer.Render(messages), preset.ContextLength);

    /// <summary>One example already rendered (by the tokenizer of the model whose context this is).</summary>
    public static ExampleFit Check((int[] Tokens, float[] LossWeights) rendered, int contextLength)
    {
        var (tokens, weights) = Fit(rendered, contextLength);
        // The first token is never predicted (it has no token before it), so its weight cannot count.
        return new ExampleFit(rendered.Tokens.Length, rendered.LossWeights.Skip(1).Count(weight => weight != 0), weights.Skip(1).Count(weight => weight != 0))
        {
            Truncated = rendered.Tokens.Length > contextLength + 1,
        };
    }

    /// <summary>A whole training file; the first 20 examples (0-based indexes) without learned tokens are listed.</summary>
    public static ContextFit Check(ModelPreset preset, IReadOnlyList<SupervisedExample> examples)
    {
        int truncated = 0, empty = 0;
        long tokens = 0, learned = 0;
        var listed = new List<int>();
        for (var i = 0; i < examples.Count; i++)
        {
            var fit = Check(preset, examples[i].Messages);
            tokens += Math.Min(fit.Tokens, preset.ContextLength + 1);
            learned += fit.LearnedTokensKept;
            truncated += fit.Truncated ? 1 : 0;
            if (fit.NothingToLearn)
            {
                empty++;
                if (listed.Count < 20)
                {
                    listed.Add(i);
                }
            }
        }

        return new ContextFit(preset.Name, preset.ContextLength, examples.Count, truncated, empty, tokens, learned, listed);
    }
}
