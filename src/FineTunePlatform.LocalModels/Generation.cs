using System.Text;

namespace FineTunePlatform.LocalModels;

/// <summary>Sampling settings; temperature 0 is greedy decoding.</summary>
public sealed record SamplingOptions(double Temperature = 1, double TopP = 1, int MaxTokens = 256, int? Seed = null);

/// <summary>A generated reply and why it stopped: "stop" at end of turn, "length" at the token budget or context.</summary>
public sealed record GenerationResult(string Text, string FinishReason, int PromptTokens, int CompletionTokens);

/// <summary>
/// Generates the assistant's reply to a conversation on the calling thread, one token at a time with cached keys and
/// values. Concurrent requests go through <see cref="GenerationScheduler"/>, which batches them.
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
        var reply = new Reply(model.Preset, messages, options, stop);
        var decoder = new KvCacheDecoder(model);
        while (true)
        {
            decoder.Step([(reply.Sequence, reply.TakeTokensToDecode())]);
            var delta = reply.Advance();
            if (delta.Length > 0 || reply.Result is not null)
            {
                yield return (delta, reply.Result);
            }

            if (reply.Result is not null)
            {
                yield break;
            }
        }
    }
}

/// <summary>
/// One reply in the making: its cache, its sampler, and the text so far. After each decoding step that included its
/// sequence, <see cref="Advance"/> samples the next token and returns the text that became safe to show.
/// </summary>
internal sealed class Reply
{
    private readonly SamplingOptions _options;
    private readonly IReadOnlyList<string>? _stop;
    private readonly int _contextLength;
    private readonly int _promptTokens;
    private readonly int _holdBack;
    private readonly Random _random;
    private readonly ChatTokenizer _tokenizer;
    private readonly Decoder _utf8 = Encoding.UTF8.GetDecoder();
    private readonly StringBuilder _text = new();
    private char[] _chars = new char[16];
    private readonly double[] _weights;
    private int[] _pending;
    private int _emitted;
    private int _produced;

    public Reply(ModelPreset preset, IReadOnlyList<ChatTurn> messages, SamplingOptions options, IReadOnlyList<string>? stop)
    {
        _tokenizer = preset.Tokenizer;
        var prompt = _tokenizer.RenderPrompt(messages);
        _promptTokens = prompt.Length;
        _contextLength = preset.ContextLength;
        // A prompt longer than the context keeps its end, which holds the turn being answered.
        _pending = prompt.Length > _contextLength ? prompt[^_contextLength..] : prompt;
        _options = options;
        _stop = stop is { Count: > 0 } ? stop.Where(sequence => sequence.Length > 0).ToList() : null;
        _holdBack = _stop is { Count: > 0 } ? _stop.Max(sequence => sequence.Length) : 0;
        _random = new Random(options.Seed ?? Environment.TickCount);
        _weights = new double[preset.VocabularySize];
        Sequence = new DecodingSequence(preset);
    }

    public DecodingSequence Sequence { get; }

    /// <summary>Set once the reply is finished.</summary>
    public GenerationResult? Result { get; private set; }

    /// <summary>The tokens the next step must feed: the prompt at first, then the token just sampled.</summary>
    public int[] TakeTokensToDecode()
    {
        var tokens = _pending;
        _pending = [];
        return tokens;
    }

    /// <summary>Samples from the sequence's current distribution; returns the text that can be shown now.</summary>
    public string Advance()
    {
        if (_produced >= _options.MaxTokens || Sequence.Position >= _contextLength)
        {
            return Finish("length");
        }

        var next = Sample(Sequence.Probabilities);
        _produced++;
        if (next == ChatTokens.EndOfTurn)
        {
            return Finish("stop");
        }

        var bytes = _tokenizer.Bytes(next);
        if (bytes.Length > 0)
        {
            if (_chars.Length < bytes.Length + 4)
            {
                _chars = new char[bytes.Length + 4];
            }

            var count = _utf8.GetChars(bytes, _chars, flush: false);
            _text.Append(_chars, 0, count);
            if (count > 0 && _stop is not null && StopAt(count) is { } cut)
            {
                _text.Length = cut;
                return Finish("stop");
            }
        }

        // Stop before a token whose decoding would fill the context: nothing could be sampled after it.
        if (_produced >= _options.MaxTokens || Sequence.Position + 1 >= _contextLength)
        {
            return Finish("length");
        }

        _pending = [next];
        // Hold back what could still become a stop sequence.
        var safe = _text.Length - _holdBack;
        if (safe <= _emitted)
        {
            return "";
        }

        var delta = _text.ToString(_emitted, safe - _emitted);
        _emitted = safe;
        return delta;
    }

    /// <summary>
    /// Where the earliest stop sequence that ends in the characters just appended begins (a byte may complete more than
    /// one character, e.g. a replacement character and the next one), or null.
    /// </summary>
    private int? StopAt(int appended)
    {
        var from = Math.Max(0, _text.Length - appended - _holdBack + 1);
        var tail = _text.ToString(from, _text.Length - from);
        int? cut = null;
        foreach (var sequence in _stop!)
        {
            var index = tail.IndexOf(sequence, StringComparison.Ordinal);
            if (index >= 0 && (cut is null || from + index < cut))
            {
                cut = from + index;
            }
        }

        return cut;
    }

    private string Finish(string reason)
    {
        var delta = _text.ToString(_emitted, Math.Max(0, _text.Length - _emitted));
        _emitted = _text.Length;
        Result = new GenerationResult(_text.ToString(), reason, _promptTokens, _produced);
        return delta;
    }

    private int Sample(ReadOnlySpan<float> probabilities)
    {
        if (_options.Temperature <= 0)
        {
            return System.Numerics.Tensors.TensorPrimitives.IndexOfMax(probabilities);
        }

        // Temperature on probabilities: p^(1/T), renormalised; then nucleus (top-p) truncation.
        var total = 0.0;
        for (var i = 0; i < _weights.Length; i++)
        {
            _weights[i] = Math.Pow(probabilities[i], 1 / _options.Temperature);
            total += _weights[i];
        }

        if (_options.TopP < 1)
        {
            var order = Enumerable.Range(0, _weights.Length).OrderByDescending(i => _weights[i]).ToArray();
            double cumulative = 0;
            var keptTotal = 0.0;
            var cut = order.Length;
            for (var k = 0; k < order.Length; k++)
            {
                keptTotal += _weights[order[k]];
                cumulative += _weights[order[k]] / total;
                if (cumulative >= _options.TopP)
                {
                    cut = k + 1;
                    break;
                }
            }

            for (var k = cut; k < order.Length; k++)
            {
                _weights[order[k]] = 0;
            }

            total = keptTotal;
        }

        var draw = _random.NextDouble() * total;
        var last = 0;
        for (var i = 0; i < _weights.Length; i++)
        {
            if (_weights[i] <= 0)
            {
                continue;
            }

            last = i;
            draw -= _weights[i];
            if (draw <= 0)
            {
                return i;
            }
        }

        return last;
    }
}
