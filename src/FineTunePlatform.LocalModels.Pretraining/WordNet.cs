using System.Security.Cryptography;

namespace FineTunePlatform.LocalModels.Pretraining;

/// <summary>
/// One WordNet synset: its words (spaces for underscores), part of speech, definition, examples, hypernyms, and its
/// lexicographer file (WordNet's coarse topic: "noun.food", "noun.artifact", "verb.motion", ...).
/// </summary>
internal sealed record Synset(string Offset, string PartOfSpeech, IReadOnlyList<string> Words, string Definition, IReadOnlyList<string> Examples, IReadOnlyList<string> Hypernyms,
    string Topic = "");

/// <summary>
/// Reads WordNet 3.0's database files (data.noun, data.verb, data.adj, data.adv) as Debian's wordnet-base installs
/// them. Format: wndb(5WN): `offset lex_filenum ss_type w_cnt word lex_id ... p_cnt [ptr...] | gloss`, the gloss being
/// the definition and then quoted examples separated by "; ".
/// </summary>
internal static class WordNet
{
    public const string DefaultDirectory = "/usr/share/wordnet";
    private static readonly string[] Files = ["data.noun", "data.verb", "data.adj", "data.adv"];

    /// <summary>The lexicographer files by number (lexnames(5WN)), the data files' second field.</summary>
    private static readonly string[] LexicographerFiles =
    [
        "adj.all", "adj.pert", "adv.all", "noun.Tops", "noun.act", "noun.animal", "noun.artifact", "noun.attribute", "noun.body",
        "noun.cognition", "noun.communication", "noun.event", "noun.feeling", "noun.food", "noun.group", "noun.location", "noun.motive",
        "noun.object", "noun.person", "noun.phenomenon", "noun.plant", "noun.possession", "noun.process", "noun.quantity", "noun.relation",
        "noun.shape", "noun.state", "noun.substance", "noun.time", "verb.body", "verb.change", "verb.cognition", "verb.communication",
        "verb.competition", "verb.consumption", "verb.contact", "verb.creation", "verb.emotion", "verb.motion", "verb.perception",
        "verb.possession", "verb.social", "verb.stative", "verb.weather", "adj.ppl",
    ];

    public static List<Synset> Read(string directory)
    {
        var synsets = new List<Synset>();
        foreach (var file in Files)
        {
            var path = Path.Combine(directory, file);
            if (!File.Exists(path))
            {
                throw new FileNotFoundException($"WordNet's {file} is missing: apt-get install -y wordnet-base (it installs {DefaultDirectory}).", path);
            }

            var lines = File.ReadAllLines(path).Where(line => !line.StartsWith("  ", StringComparison.Ordinal)).ToList();
            var firstWord = new Dictionary<string, string>();
            var parsed = new List<(string Offset, string Topic, string Pos, List<string> Words, List<string> HypernymOffsets, string Gloss)>();
            foreach (var line in lines)
            {
                var bar = line.IndexOf(" | ", StringComparison.Ordinal);
                var fields = line[..bar].Split(' ');
                var pos = fields[2];
                var count = Convert.ToInt32(fields[3], 16);
                var words = Enumerable.Range(0, count).Select(i => Clean(fields[4 + (2 * i)])).ToList();
                var pointerCount = int.Parse(fields[4 + (2 * count)], System.Globalization.CultureInfo.InvariantCulture);
                var hypernyms = new List<string>();
                for (var p = 0; p < pointerCount; p++)
                {
                    var at = 5 + (2 * count) + (4 * p);
                    if (fields[at] is "@" or "@i")
                    {
                        hypernyms.Add(fields[at + 1]);
                    }
                }

                firstWord[fields[0]] = words[0];
                var topic = int.Parse(fields[1], System.Globalization.CultureInfo.InvariantCulture);
                parsed.Add((fields[0], topic < LexicographerFiles.Length ? LexicographerFiles[topic] : "", pos, words, hypernyms, line[(bar + 3)..].Trim()));
            }

            foreach (var (offset, topic, pos, words, hypernymOffsets, gloss) in parsed)
            {
                var parts = SplitGloss(gloss);
                var definition = parts.Where(part => !part.StartsWith('"')).FirstOrDefault() ?? "";
                var examples = parts.Where(part => part.StartsWith('"')).Select(part => part.Trim('"').Trim()).Where(example => example.Length > 0).ToList();
                synsets.Add(new Synset(offset, pos switch { "n" => "noun", "v" => "verb", "r" => "adverb", _ => "adjective" }, words, definition, examples,
                    hypernymOffsets.Where(firstWord.ContainsKey).Select(h => firstWord[h]).ToList(), topic));
            }
        }

        return synsets;
    }

    /// <summary>SHA-256 of each data file, printed so a run says which WordNet it read.</summary>
    public static IEnumerable<string> Fingerprints(string directory) => Files.Select(file =>
        $"{file} {Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(Path.Combine(directory, file))))}");

    private static string Clean(string word)
    {
        var paren = word.IndexOf('(');
        return (paren > 0 ? word[..paren] : word).Replace('_', ' ');
    }

    /// <summary>"def; "ex 1"; "ex 2"" → parts, keeping semicolons inside quotes.</summary>
    private static List<string> SplitGloss(string gloss)
    {
        var parts = new List<string>();
        var start = 0;
        var quoted = false;
        for (var i = 0; i < gloss.Length; i++)
        {
            if (gloss[i] == '"')
            {
                quoted = !quoted;
            }
            else if (gloss[i] == ';' && !quoted)
            {
                parts.Add(gloss[start..i].Trim());
                start = i + 1;
            }
        }

        parts.Add(gloss[start..].Trim());
        return parts.Where(part => part.Length > 0).ToList();
    }
}
