namespace FineTunePlatform.Evaluation.Graders;

/// <summary>
/// Text similarity metrics in [0, 1]; two empty texts are identical (1). Word metrics compare lower-cased runs of
/// letters and digits (punctuation and spacing do not count).
/// - fuzzy_match: 2·LCS / (|a| + |b|) over characters (the indel ratio), on each text's first 4,096 characters;
/// - bleu: sentence BLEU up to 4-grams (fewer for shorter texts), add-one smoothing above unigrams, brevity penalty;
/// - gleu: Google-BLEU, n-gram matches (1–4) over the larger of the two n-gram counts;
/// - rouge_1 … rouge_5: n-gram F1; rouge_l: longest-common-subsequence F1 over words.
/// </summary>
public static class TextSimilarity
{
    private const int MaxFuzzyCharacters = 4096;

    public static double Score(string metric, string candidate, string reference) => metric switch
    {
        "fuzzy_match" => FuzzyMatch(candidate, reference),
        "bleu" => Bleu(Words(candidate), Words(reference)),
        "gleu" => Gleu(Words(candidate), Words(reference)),
        "rouge_l" => RougeL(Words(candidate), Words(reference)),
        _ when metric.StartsWith("rouge_", StringComparison.Ordinal) => RougeN(Words(candidate), Words(reference), metric[^1] - '0'),
        _ => throw new ArgumentOutOfRangeException(nameof(metric), metric, "unknown metric"),
    };

    public static double FuzzyMatch(string a, string b)
    {
        a = a.Length > MaxFuzzyCharacters ? a[..MaxFuzzyCharacters] : a;
        b = b.Length > MaxFuzzyCharacters ? b[..MaxFuzzyCharacters] : b;
        return a.Length + b.Length == 0 ? 1 : 2.0 * LongestCommonSubsequence(a.AsSpan(), b.AsSpan()) / (a.Length + b.Length);
    }

    public static double Bleu(IReadOnlyList<string> candidate, IReadOnlyList<string> reference)
    {
        if (candidate.Count == 0 || reference.Count == 0)
        {
            return candidate.Count == reference.Count ? 1 : 0;
        }

        var order = Math.Min(4, Math.Min(candidate.Count, reference.Count));
        var logPrecision = 0.0;
        for (var n = 1; n <= order; n++)
        {
            var (matches, total, _) = Overlap(candidate, reference, n);
            var smoothing = n > 1 ? 1 : 0;
            if (matches + smoothing == 0)
            {
                return 0;
            }

            logPrecision += Math.Log((double)(matches + smoothing) / (total + smoothing)) / order;
        }

        var brevity = candidate.Count >= reference.Count ? 1 : Math.Exp(1 - ((double)reference.Count / candidate.Count));
        return brevity * Math.Exp(logPrecision);
    }

    public static double Gleu(IReadOnlyList<string> candidate, IReadOnlyList<string> reference)
    {
        if (candidate.Count == 0 || reference.Count == 0)
        {
            return candidate.Count == reference.Count ? 1 : 0;
        }

        int matches = 0, candidateTotal = 0, referenceTotal = 0;
        for (var n = 1; n <= 4; n++)
        {
            var (m, c, r) = Overlap(candidate, reference, n);
            matches += m;
            candidateTotal += c;
            referenceTotal += r;
        }

        return (double)matches / Math.Max(candidateTotal, referenceTotal);
    }

    public static double RougeN(IReadOnlyList<string> candidate, IReadOnlyList<string> reference, int n)
    {
        var (matches, candidateTotal, referenceTotal) = Overlap(candidate, reference, n);
        // Texts too short for any n-gram are alike only when they are the same words.
        return candidateTotal + referenceTotal == 0 ? (candidate.SequenceEqual(reference) ? 1 : 0) : F1(matches, candidateTotal, referenceTotal);
    }

    public static double RougeL(IReadOnlyList<string> candidate, IReadOnlyList<string> reference) =>
        F1(LongestCommonSubsequence(candidate.ToArray().AsSpan(), reference.ToArray().AsSpan()), candidate.Count, reference.Count);

    public static List<string> Words(string text)
    {
        var words = new List<string>();
        var start = -1;
        for (var i = 0; i <= text.Length; i++)
        {
            var isWordCharacter = i < text.Length && char.IsLetterOrDigit(text[i]);
            if (isWordCharacter && start < 0)
            {
                start = i;
            }
            else if (!isWordCharacter && start >= 0)
            {
                words.Add(text[start..i].ToLowerInvariant());
                start = -1;
            }
        }

        return words;
    }

    private static double F1(int matches, int candidateTotal, int referenceTotal)
    {
        if (candidateTotal + referenceTotal == 0)
        {
            return 1;
        }

        if (matches == 0)
        {
            return 0;
        }

        var precision = (double)matches / candidateTotal;
        var recall = (double)matches / referenceTotal;
        return 2 * precision * recall / (precision + recall);
    }

    /// <summary>Clipped n-gram matches, and the n-gram counts of each side.</summary>
    private static (int Matches, int CandidateTotal, int ReferenceTotal) Overlap(IReadOnlyList<string> candidate, IReadOnlyList<string> reference, int n)
    {
        var referenceCounts = NGrams(reference, n).CountBy(gram => gram).ToDictionary();
        var candidateGrams = NGrams(candidate, n).ToList();
        var matches = 0;
        foreach (var gram in candidateGrams)
        {
            if (referenceCounts.TryGetValue(gram, out var left) && left > 0)
            {
                referenceCounts[gram] = left - 1;
                matches++;
            }
        }

        return (matches, candidateGrams.Count, Math.Max(0, reference.Count - n + 1));
    }

    private static IEnumerable<string> NGrams(IReadOnlyList<string> words, int n)
    {
        for (var i = 0; i + n <= words.Count; i++)
        {
            yield return string.Join('\u0001', Enumerable.Range(i, n).Select(j => words[j]));
        }
    }

    private static int LongestCommonSubsequence<T>(ReadOnlySpan<T> a, ReadOnlySpan<T> b)
        where T : IEquatable<T>
    {
        var previous = new int[b.Length + 1];
        var current = new int[b.Length + 1];
        for (var i = 1; i <= a.Length; i++)
        {
            for (var j = 1; j <= b.Length; j++)
            {
                current[j] = a[i - 1].Equals(b[j - 1]) ? previous[j - 1] + 1 : Math.Max(previous[j], current[j - 1]);
            }

            (previous, current) = (current, previous);
        }

        return previous[b.Length];
    }
}
