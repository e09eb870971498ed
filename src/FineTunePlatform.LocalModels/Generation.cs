using System.Text;

namespace FineTunePlatform.LocalModels;

/// <summary>Sampling settings; temperature 0 is greedy decoding.</summary>
public sealed record SamplingOptions(double Temperature = 1, double TopP = 1, int MaxTokens = 256, int? Seed = null);

/// <summary>A generated reply and why it stopped: "stop" at end of turn, "length" at the token budget or context.</summary>
public sealed record GenerationResult(string Text, string FinishReason, int PromptTokens, int CompletionTokens);

/// <summary>
/// Generates the assistant's reply to a conversation, one token at a time with cached keys and values.
/// </summary>
public static class Generator
{
    public static GenerationResult Complete(TransformerModel model, IReadOnlyList<ChatTurn> messages, SamplingOptions options, IReadOnlyList<string>? stop = null)
    {
        var text = new StringBuilder();
        GenerationResult? result = null;
        foreach (var piece in Stream(model, messages, options, stop))
        {
            text.Append(piece.Delta);
            result = piece.Result ?? result;
        }

        return result! with { Text = text.ToString() };
    }

    /// <summary>
    /// Yields the reply as text deltas as tokens are produced (bytes are held back until they complete a UTF-8
    /// character); the last item carries the result. Stop sequences end the reply without being part of it.
    /// </summary>
    public static IEnumerable<(string Delta, GenerationResult? Result)> Stream(TransformerModel model, IReadOnlyList<ChatTurn> messages, SamplingOptions options, IReadOnlyList<string>? stop = null)
    {
        var tokens = ChatTokens.RenderPrompt(messages).ToList();
        var promptTokens = tokens.Count;
        var context = model.Preset.ContextLength;
        if (tokens.Count > context)
        {
            tokens = tokens.Skip(tokens.Count - context).ToList();
        }

        var random = new Random(options.Seed ?? Environment.TickCount);
        var utf8 = Encoding.UTF8.GetDecoder();
        var reply = new StringBuilder();
        var emitted = 0;
        var chars = new char[4];
        var finish = "length";
        var produced = 0;
        var holdBack = stop is { Count: > 0 } ? stop.Max(sequence => sequence.Length) : 0;
        var decoder = new KvCacheDecoder(model);
        foreach (var token in tokens)
        {
            decoder.Append(token);
        }

        while (produced < options.MaxTokens && decoder.Position < context)
        {
            var next = Sample(decoder.Probabilities, options, random);
            produced++;
            if (next == ChatTokens.EndOfTurn)
            {
                finish = "stop";
                break;
            }

            if (decoder.Position < context)
            {
                decoder.Append(next);
            }

            if (next >= 256)
            {
                continue;
            }

            var count = utf8.GetChars([(byte)next], 0, 1, chars, 0);
            reply.Append(chars, 0, count);
            if (stop is not null && stop.FirstOrDefault(sequence => sequence.Length > 0 && reply.ToString().EndsWith(sequence, StringComparison.Ordinal)) is { } hit)
            {
                reply.Length -= hit.Length;
                finish = "stop";
                break;
            }

            // Hold back what could still become a stop sequence.
            var safe = reply.Length - holdBack;
            if (safe > emitted)
            {
                yield return (reply.ToString(emitted, safe - emitted), null);
                emitted = safe;
            }
        }

        yield return (reply.ToString(emitted, Math.Max(0, reply.Length - emitted)), new GenerationResult(reply.ToString(), finish, promptTokens, produced));
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
}
