using System.Collections.Concurrent;
using System.Text;
using System.Text.RegularExpressions;

namespace FineTunePlatform.LocalModels;

/// <summary>
/// Turns chat messages into a model's tokens. Every tokenizer shares the 256 byte tokens (0..255, so any text is
/// representable) and the role and end-of-turn tokens of <see cref="ChatTokens"/> (256..260); a BPE tokenizer adds
/// merged byte sequences above them. A conversation renders as `role content end` per message.
/// </summary>
public abstract class ChatTokenizer
{
    /// <summary>Stored in checkpoints: a model is served and trained with the tokenizer it was trained with.</summary>
    public abstract string Name { get; }

    public abstract int VocabularySize { get; }

    /// <summary>The tokens of a message's content (no role or end token).</summary>
    public abstract int[] Encode(string text);

    /// <summary>The bytes a content token stands for (empty for the role and end tokens).</summary>
    public abstract ReadOnlySpan<byte> Bytes(int token);

    /// <summary>The original tokenizer: bytes only (vocabulary 261, rounded to 264). Models trained before BPE use it.</summary>
    public static ChatTokenizer ByteLevel { get; } = new ByteTokenizer();

    /// <summary>The BPE the built-in presets use (trained on WordNet 3.0's glosses, see docs/local-models.md).</summary>
    public static ChatTokenizer BuiltIn => BuiltInBpe.Value;

    private static readonly Lazy<BpeTokenizer> BuiltInBpe = new(() =>
    {
        using var stream = typeof(ChatTokenizer).Assembly.GetManifestResourceStream(BpeTokenizer.BuiltInResource)
            ?? throw new InvalidOperationException($"The built-in tokenizer resource '{BpeTokenizer.BuiltInResource}' is missing from the assembly.");
        return BpeTokenizer.Load(stream);
    });

    /// <summary>The tokenizer a checkpoint names (null or "bytes": the byte tokenizer of checkpoints written before BPE).</summary>
    public static ChatTokenizer ByName(string? name) => name switch
    {
        null or "" or ByteTokenizer.TokenizerName => ByteLevel,
        _ when name == BuiltIn.Name => BuiltIn,
        _ => throw new InvalidDataException($"The checkpoint was trained with tokenizer '{name}', which this build does not have (it has '{ByteTokenizer.TokenizerName}' and '{BuiltIn.Name}')."),
    };

    /// <summary>
    /// Renders a conversation as `role content end` per message. The returned weights mark the tokens the model
    /// learns to predict: an assistant message's content and its end token, unless its weight is 0.
    /// </summary>
    public (int[] Tokens, float[] LossWeights) Render(IReadOnlyList<ChatTurn> messages)
    {
        var tokens = new List<int>();
        var weights = new List<float>();
        foreach (var message in messages)
        {
            var learn = message.Role == "assistant" && message.Weight is not 0;
            tokens.Add(ChatTokens.RoleToken(message.Role));
            weights.Add(0);
            foreach (var token in Encode(message.Content))
            {
                tokens.Add(token);
                weights.Add(learn ? 1 : 0);
            }

            tokens.Add(ChatTokens.EndOfTurn);
            weights.Add(learn ? 1 : 0);
        }

        return ([.. tokens], [.. weights]);
    }

    /// <summary>A prompt for generation: the conversation, then the assistant's role token.</summary>
    public int[] RenderPrompt(IReadOnlyList<ChatTurn> messages) => [.. Render(messages).Tokens, ChatTokens.Assistant];

    /// <summary>The text of content tokens (role and end tokens contribute nothing; invalid UTF-8 becomes U+FFFD).</summary>
    public string Decode(IEnumerable<int> tokens)
    {
        var bytes = new List<byte>();
        foreach (var token in tokens)
        {
            bytes.AddRange(Bytes(token));
        }

        return Encoding.UTF8.GetString([.. bytes]);
    }
}

/// <summary>Bytes, the role tokens and end of turn: 261 tokens, rounded to 264 so rows stay vector-aligned.</summary>
internal sealed class ByteTokenizer : ChatTokenizer
{
    public const string TokenizerName = "bytes";
    private static readonly byte[][] Singles = Enumerable.Range(0, 256).Select(b => new[] { (byte)b }).ToArray();

    public override string Name => TokenizerName;

    public override int VocabularySize => 264;

    public override int[] Encode(string text) => Encoding.UTF8.GetBytes(text).Select(b => (int)b).ToArray();

    public override ReadOnlySpan<byte> Bytes(int token) => token is >= 0 and < 256 ? Singles[token] : [];
}

/// <summary>
/// Byte-level BPE (after GPT-2): text is split into pre-tokens (a word with its leading space, one digit, a run of
/// punctuation, whitespace), each pre-token's UTF-8 bytes are merged pair by pair in the order the merges were
/// learned. Digits stay single tokens so numbers are copied digit by digit. Merges never cross pre-tokens, so a
/// word's tokens do not depend on its neighbours.
/// </summary>
public sealed partial class BpeTokenizer : ChatTokenizer
{
    internal const string BuiltInResource = "FineTunePlatform.LocalModels.Resources.bpe.merges";
    private const string Magic = "#ftp-bpe v1";

    /// <summary>The first merged token: after the bytes and the role and end tokens.</summary>
    public const int FirstMergedToken = ChatTokens.EndOfTurn + 1;

    // Keyed by the pair packed into one long (Pair): hashing a long is cheaper than a tuple, and encoding a word
    // not in the cache looks up every adjacent pair once per merge round.
    private readonly Dictionary<long, int> _ranks = [];
    private readonly byte[][] _bytes;
    private readonly ConcurrentDictionary<string, int[]> _cache = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, int[]>.AlternateLookup<ReadOnlySpan<char>> _cacheBySpan;
    private const int CacheLimit = 200_000;
    private int _cached;

    private BpeTokenizer(string name, IReadOnlyList<(int Left, int Right)> merges)
    {
        Name = name;
        Merges = merges;
        _cacheBySpan = _cache.GetAlternateLookup<ReadOnlySpan<char>>();
        VocabularySize = FirstMergedToken + merges.Count;
        _bytes = new byte[VocabularySize][];
        for (var b = 0; b < 256; b++)
        {
            _bytes[b] = [(byte)b];
        }

        for (var t = 256; t < FirstMergedToken; t++)
        {
            _bytes[t] = [];
        }

        for (var i = 0; i < merges.Count; i++)
        {
            var (left, right) = merges[i];
            if (left >= FirstMergedToken + i || right >= FirstMergedToken + i || left is >= 256 and < FirstMergedToken || right is >= 256 and < FirstMergedToken)
            {
                throw new InvalidDataException($"Merge {i} ({left} {right}) names a token that is not a byte or an earlier merge.");
            }

            _ranks[Pair(left, right)] = FirstMergedToken + i;
            _bytes[FirstMergedToken + i] = [.. _bytes[left], .. _bytes[right]];
        }
    }

    public override string Name { get; }

    public override int VocabularySize { get; }

    /// <summary>The merges in the order they were learned: token FirstMergedToken + i is Merges[i].Left followed by .Right.</summary>
    public IReadOnlyList<(int Left, int Right)> Merges { get; }

    [GeneratedRegex(@"'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+", RegexOptions.CultureInvariant)]
    private static partial Regex PreTokenizer();

    /// <summary>The pre-tokens of a text, in order (for training and encoding alike).</summary>
    public static IEnumerable<string> PreTokens(string text)
    {
        foreach (Match match in PreTokenizer().Matches(text))
        {
            yield return match.Value;
        }
    }

    public override int[] Encode(string text)
    {
        var tokens = new List<int>(text.Length / 2);
        // Matches as spans and the cache looked up by span: a word seen before costs no string.
        foreach (var match in PreTokenizer().EnumerateMatches(text))
        {
            var piece = text.AsSpan(match.Index, match.Length);
            if (!_cacheBySpan.TryGetValue(piece, out var encoded))
            {
                encoded = EncodePiece(piece);
                // Bounded: a file of random strings must not grow the cache without limit. Counted by hand because
                // ConcurrentDictionary.Count takes every lock, which on each miss cost more than the encoding.
                if (Volatile.Read(ref _cached) < CacheLimit && _cacheBySpan.TryAdd(piece, encoded))
                {
                    Interlocked.Increment(ref _cached);
                }
            }

            tokens.AddRange(encoded);
        }

        return [.. tokens];
    }

    public override ReadOnlySpan<byte> Bytes(int token) => token >= 0 && token < _bytes.Length ? _bytes[token] : [];

    private static long Pair(int left, int right) => ((long)left << 32) | (uint)right;

    /// <summary>
    /// One pre-token's tokens: its UTF-8 bytes, then, round by round, the earliest-learned merge among its adjacent
    /// pairs applied everywhere in it, in place, until no pair has a merge.
    /// </summary>
    private int[] EncodePiece(ReadOnlySpan<char> piece)
    {
        var byteCount = Encoding.UTF8.GetByteCount(piece);
        Span<byte> bytes = byteCount <= 512 ? stackalloc byte[byteCount] : new byte[byteCount];
        Encoding.UTF8.GetBytes(piece, bytes);
        Span<int> parts = byteCount <= 512 ? stackalloc int[byteCount] : new int[byteCount];
        for (var i = 0; i < byteCount; i++)
        {
            parts[i] = bytes[i];
        }

        var count = byteCount;
        while (count > 1)
        {
            var best = int.MaxValue;
            for (var i = 0; i + 1 < count; i++)
            {
                if (_ranks.TryGetValue(Pair(parts[i], parts[i + 1]), out var merged) && merged < best)
                {
                    best = merged;
                }
            }

            if (best == int.MaxValue)
            {
                break;
            }

            var (left, right) = Merges[best - FirstMergedToken];
            var written = 0;
            for (var i = 0; i < count; i++)
            {
                if (i + 1 < count && parts[i] == left && parts[i + 1] == right)
                {
                    parts[written++] = best;
                    i++;
                }
                else
                {
                    parts[written++] = parts[i];
                }
            }

            count = written;
        }

        return parts[..count].ToArray();
    }

    /// <summary>
    /// Learns merges from texts until the vocabulary has `vocabularySize` tokens: each round merges the most frequent
    /// adjacent pair over all pre-tokens (ties: the smallest pair), so the result depends only on the texts.
    /// </summary>
    public static BpeTokenizer Train(IEnumerable<string> texts, int vocabularySize, string name)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(vocabularySize, FirstMergedToken);
        var counts = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (var text in texts)
        {
            foreach (var piece in PreTokens(text))
            {
                counts[piece] = counts.GetValueOrDefault(piece) + 1;
            }
        }

        var words = counts.OrderBy(pair => pair.Key, StringComparer.Ordinal)
            .Select(pair => (Parts: Encoding.UTF8.GetBytes(pair.Key).Select(b => (int)b).ToList(), Count: pair.Value)).ToList();
        var merges = new List<(int, int)>();
        var pairs = new Dictionary<(int, int), long>();
        while (FirstMergedToken + merges.Count < vocabularySize)
        {
            pairs.Clear();
            foreach (var (parts, count) in words)
            {
                for (var i = 0; i + 1 < parts.Count; i++)
                {
                    var pair = (parts[i], parts[i + 1]);
                    pairs[pair] = pairs.GetValueOrDefault(pair) + count;
                }
            }

            if (pairs.Count == 0)
            {
                break;
            }

            var best = pairs.OrderByDescending(pair => pair.Value).ThenBy(pair => pair.Key.Item1).ThenBy(pair => pair.Key.Item2).First().Key;
            var token = FirstMergedToken + merges.Count;
            merges.Add(best);
            foreach (var (parts, _) in words)
            {
                for (var i = 0; i + 1 < parts.Count; i++)
                {
                    if (parts[i] == best.Item1 && parts[i + 1] == best.Item2)
                    {
                        parts[i] = token;
                        parts.RemoveAt(i + 1);
                    }
                }
            }
        }

        return new BpeTokenizer(name, merges);
    }

    /// <summary>Text: a header line with the name, then one merge per line ("left right", token ids).</summary>
    public void Save(Stream stream)
    {
        using var writer = new StreamWriter(stream, new UTF8Encoding(false), leaveOpen: true) { NewLine = "\n" };
        writer.WriteLine($"{Magic} {Name}");
        foreach (var (left, right) in Merges)
        {
            writer.WriteLine($"{left} {right}");
        }
    }

    public static BpeTokenizer Load(Stream stream)
    {
        using var reader = new StreamReader(stream, Encoding.UTF8);
        var header = reader.ReadLine() ?? "";
        if (!header.StartsWith(Magic + " ", StringComparison.Ordinal))
        {
            throw new InvalidDataException("Not a FineTunePlatform BPE merges file.");
        }

        var merges = new List<(int, int)>();
        while (reader.ReadLine() is { } line)
        {
            if (line.Length == 0)
            {
                continue;
            }

            var fields = line.Split(' ');
            merges.Add((int.Parse(fields[0], System.Globalization.CultureInfo.InvariantCulture), int.Parse(fields[1], System.Globalization.CultureInfo.InvariantCulture)));
        }

        return new BpeTokenizer(header[(Magic.Length + 1)..], merges);
    }
}
