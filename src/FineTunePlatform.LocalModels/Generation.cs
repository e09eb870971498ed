using System.Text;

namespace FineTunePlatform.LocalModels;

/// <summary>Sampling settings; temperature 0 is greedy decoding.</summary>
public sealed record SamplingOptions(double Temperature = 1, double TopP = 1, int MaxTokens = 256, int? Seed = null);

/// <summary>A generated reply and why it stopped: "stop" at end of turn, "length" at the token budget or context.</summary>
public sealed record GenerationResult(string Text, string FinishReason, int PromptTokens, int CompletionTokens);

/// <summary>
/// Generates the assistant's reply to a conversation. This first version recomputes the whole sequence for each new
/// token (no KV cache yet): fine for the small presets' contexts, and the reference a cached decoder must match.
/// </summary>
public static class Generator
{
    public static GenerationResult Complete(TransformerModel model, IReadOnlyList<ChatTurn> messages, SamplingOptions options)
    {
        var tokens = ChatTokens.RenderPrompt(messages).ToList();
        var promptTokens = tokens.Count;
        var context = model.Preset.ContextLength;
        if (promptTokens > context)
        {
            tokens = tokens.Skip(promptTokens - context).ToList();
        }

        var random = new Random(options.Seed ?? Environment.TickCount);
        var reply = new List<byte>();
        var vocabulary = model.Preset.VocabularySize;
        for (var produced = 0; produced < options.MaxTokens; produced++)
        {
            if (tokens.Count >= context)
            {
                return new GenerationResult(Decode(reply), "length", promptTokens, produced);
            }

            var pass = new ForwardPass(model, 1, tokens.Count);
            pass.Forward([.. tokens]);
            var next = Sample(pass.Probabilities.AsSpan((tokens.Count - 1) * vocabulary, vocabulary), options, random);
            if (next == ChatTokens.EndOfTurn)
            {
                return new GenerationResult(Decode(reply), "stop", promptTokens, produced + 1);
            }

            tokens.Add(next);
            if (next < 256)
            {
                reply.Add((byte)next);
            }
        }

        return new GenerationResult(Decode(reply), "length", promptTokens, options.MaxTokens);
    }

    private static int Sample(ReadOnlySpan<float> probabilities, SamplingOptions options, Random random)
    {
        if (options.Temperature <= 0)
        {
            return System.Numerics.Tensors.TensorPrimitives.IndexOfMax(probabilities);
        }

        // Temperature on probabilities: p^(1/T), renormalised; then nucleus (top-p) truncation.
        var scaled = new double[probabilities.Length];
        for (var i = 0; i < scaled.Length; i++)
        {
            scaled[i] = Math.Pow(probabilities[i], 1 / options.Temperature);
        }

        var order = Enumerable.Range(0, scaled.Length).OrderByDescending(i => scaled[i]).ToArray();
        var total = scaled.Sum();
        var kept = new List<int>();
        double cumulative = 0;
        foreach (var i in order)
        {
            kept.Add(i);
            cumulative += scaled[i] / total;
            if (cumulative >= options.TopP)
            {
                break;
            }
        }

        var keptTotal = kept.Sum(i => scaled[i]);
        var draw = random.NextDouble() * keptTotal;
        foreach (var i in kept)
        {
            draw -= scaled[i];
            if (draw <= 0)
            {
                return i;
            }
        }

        return kept[^1];
    }

    private static string Decode(List<byte> bytes) => Encoding.UTF8.GetString([.. bytes]);
}
