using System.Text;
using System.Threading.Channels;
using FineTunePlatform.LocalModels;
using FineTunePlatform.OpenWeights;

namespace FineTunePlatform.Gateway.Routing;

/// <summary>
/// Continuous batching over one loaded open-weight base, on a thread of its own (decoding is CPU-bound for seconds;
/// it must not hold thread-pool threads that serve requests): every step feeds each active reply its pending tokens
/// (a new reply's whole prompt, the others one token) to one <see cref="KvCacheDecoder"/>, which applies each base
/// matrix once to all rows and each reply's own adapter to its rows. A reply joins at the next step and leaves as soon
/// as it ends or its client goes away; at most `maxBatch` run at once, the rest wait in arrival order. Greedy output
/// does not depend on what a reply was batched with (the decoder computes each row alike). The thread runs while
/// there is work and ends when there is none, so a base evicted from the cache keeps nothing alive.
/// </summary>
internal sealed class OpenWeightsBatcher(HuggingFaceModel model, int maxBatch, string name)
{
    private readonly Queue<OpenWeightsReply> _waiting = new();
    private readonly KvCacheDecoder _decoder = new(model.Model);
    private bool _running;

    public void Enqueue(OpenWeightsReply reply)
    {
        lock (_waiting)
        {
            _waiting.Enqueue(reply);
            if (_running)
            {
                return;
            }

            _running = true;
        }

        new Thread(Run) { IsBackground = true, Name = $"open-weights {name}" }.Start();
    }

    private void Run()
    {
        var active = new List<OpenWeightsReply>();
        var limit = Math.Max(1, maxBatch);
        while (true)
        {
            lock (_waiting)
            {
                while (active.Count < limit && _waiting.TryDequeue(out var next))
                {
                    active.Add(next);
                }

                if (active.Count == 0)
                {
                    _running = false;
                    return;
                }
            }

            active.RemoveAll(reply => reply.CancelIfAbandoned());
            if (active.Count == 0)
            {
                continue;
            }

            try
            {
                _decoder.Step(active.ConvertAll(reply => (reply.Sequence, reply.TakeTokensToDecode())));
            }
            catch (Exception ex)
            {
                // A failed step leaves these caches undefined: fail its replies, keep serving new ones.
                active.ForEach(reply => reply.Fail(ex));
                active.Clear();
                continue;
            }

            active.RemoveAll(reply => reply.Advance());
        }
    }
}

/// <summary>
/// One reply in the making on an open-weight model: its cache and sampler, the tokens so far and their text, decoded
/// incrementally as transformers' and vLLM's streamers do (the text of the tokens since the last safe point, minus
/// what was already shown; held while it ends in an incomplete UTF-8 sequence), so multi-byte characters split
/// across tokens are never shown in halves and the pieces add up to the whole reply's decoding.
/// </summary>
internal sealed class OpenWeightsReply
{
    private readonly HfTokenizer _tokenizer;
    private readonly IReadOnlyList<int> _stopTokens;
    private readonly IReadOnlyList<string> _stopStrings;
    private readonly int _holdBack;
    private readonly int _maxTokens;
    private readonly int _contextLength;
    private readonly int _promptTokens;
    private readonly TokenSampler _sampler;
    private readonly CancellationToken _cancellation;
    private readonly List<int> _tokens = [];
    private readonly StringBuilder _text = new();
    private int[] _pending;
    private int _prefixOffset;
    private int _readOffset;
    private int _emitted;
    private int _produced;

    public OpenWeightsReply(HuggingFaceModel model, LoraAdapter? adapter, int[] prompt, SamplingOptions options, IReadOnlyList<string>? stop, CancellationToken cancellation)
    {
        _tokenizer = model.Tokenizer;
        _stopTokens = model.Chat?.StopTokenIds ?? model.StopTokenIds;
        _stopStrings = stop?.Where(sequence => sequence.Length > 0).ToList() ?? [];
        _holdBack = _stopStrings.Count > 0 ? _stopStrings.Max(sequence => sequence.Length) - 1 : 0;
        _maxTokens = options.MaxTokens;
        _contextLength = model.Model.Config.MaxPositionEmbeddings;
        _promptTokens = prompt.Length;
        _pending = prompt;
        _sampler = new TokenSampler(new GenerationOptions(options.MaxTokens, options.Temperature, options.TopP, options.Seed));
        _cancellation = cancellation;
        Sequence = new DecodingSequence(model.Model, adapter);
    }

    public Channel<(string Delta, GenerationResult? Result)> Output { get; } =
        Channel.CreateUnbounded<(string, GenerationResult?)>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });

    public DecodingSequence Sequence { get; }

    public int[] TakeTokensToDecode()
    {
        var tokens = _pending;
        _pending = [];
        return tokens;
    }

    /// <summary>True (and the reply ended) when its client has gone away.</summary>
    public bool CancelIfAbandoned()
    {
        if (!_cancellation.IsCancellationRequested)
        {
            return false;
        }

        Output.Writer.TryComplete(new OperationCanceledException(_cancellation));
        return true;
    }

    public void Fail(Exception exception) => Output.Writer.TryComplete(exception);

    /// <summary>After a step that included this reply: samples its next token and streams what became safe to show; true when it ended.</summary>
    public bool Advance()
    {
        var token = _sampler.Sample(Sequence.Logits);
        // Counted like the built-in runtime counts: the end-of-turn token was generated too.
        _produced++;
        if (_stopTokens.Contains(token))
        {
            return Finish("stop");
        }

        _tokens.Add(token);
        if (AppendDecoded(final: false) is { } cut)
        {
            _text.Length = cut;
            return Finish("stop");
        }

        // The next step would feed this token at position Sequence.Position: it must fit the context.
        if (_tokens.Count >= _maxTokens || Sequence.Position + 1 > _contextLength)
        {
            if (AppendDecoded(final: true) is { } lastCut)
            {
                _text.Length = lastCut;
                return Finish("stop");
            }

            return Finish("length");
        }

        _pending = [token];
        var safe = _text.Length - _holdBack;
        if (safe > _emitted)
        {
            Output.Writer.TryWrite((_text.ToString(_emitted, safe - _emitted), null));
            _emitted = safe;
        }

        return false;
    }

    /// <summary>
    /// Appends the newly decodable text (all of it when `final`, even an incomplete character's replacement mark);
    /// returns where the earliest stop sequence now begins, or null.
    /// </summary>
    private int? AppendDecoded(bool final)
    {
        var window = _tokens.GetRange(_prefixOffset, _tokens.Count - _prefixOffset);
        string shown, whole;
        // The native tokenizer is shared with the request threads encoding prompts: not assumed to be thread-safe.
        lock (_tokenizer)
        {
            shown = _tokenizer.Decode(window.GetRange(0, _readOffset - _prefixOffset));
            whole = _tokenizer.Decode(window);
        }

        if (whole.Length <= shown.Length || (!final && whole.EndsWith('\uFFFD')))
        {
            return null;
        }

        var before = _text.Length;
        _text.Append(whole, shown.Length, whole.Length - shown.Length);
        _prefixOffset = _readOffset;
        _readOffset = _tokens.Count;
        if (_stopStrings.Count == 0)
        {
            return null;
        }

        // Only a stop sequence that ends in the new text can be new: search from where one could begin.
        var from = Math.Max(0, before - _holdBack);
        var tail = _text.ToString(from, _text.Length - from);
        int? earliest = null;
        foreach (var sequence in _stopStrings)
        {
            var index = tail.IndexOf(sequence, StringComparison.Ordinal);
            if (index >= 0 && (earliest is null || from + index < earliest))
            {
                earliest = from + index;
            }
        }

        return earliest;
    }

    private bool Finish(string reason)
    {
        if (reason == "stop" && _readOffset < _tokens.Count)
        {
            // Ended on the stop token with bytes still held back: show them as a full decoding would.
            if (AppendDecoded(final: true) is { } cut)
            {
                _text.Length = cut;
            }
        }

        var delta = _text.Length > _emitted ? _text.ToString(_emitted, _text.Length - _emitted) : "";
        _emitted = _text.Length;
        Output.Writer.TryWrite((delta, new GenerationResult(_text.ToString(), reason, _promptTokens, _produced)));
        Output.Writer.TryComplete();
        return true;
    }
}
