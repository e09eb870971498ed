using System.Globalization;
using System.Text.RegularExpressions;

namespace FineTunePlatform.LocalModels.Pretraining;

/// <summary>A pre-training document: English text, or a chat conversation in the template fine-tuning uses.</summary>
internal abstract record Document;

internal sealed record TextDocument(string Text) : Document;

internal sealed record ChatDocument(IReadOnlyList<ChatTurn> Messages) : Document;

/// <summary>
/// The pre-training corpus, generated from WordNet deterministically for a seed: every synset as a short dictionary
/// text (its words, definition, examples, what it is a kind of), and as chat exchanges that teach a base what a chat
/// is — answer the user's message after a system prompt, in English, never with nothing — through generic dictionary
/// tasks: define a word, use it in a sentence, name the word for a definition, give a synonym, choose the part of
/// speech among the options named in the question, find the word of a sentence that means something, copy a
/// sentence. None of it is the bench's tasks; it gives the fine-tuning of those a model that already reads English,
/// follows the template, and can copy from the prompt.
/// </summary>
internal static class Corpus
{
    private static readonly string[] SystemPrompts =
    [
        "You are a helpful dictionary.",
        "Answer briefly.",
        "Answer with a single word when you can.",
        "You are a careful assistant. Reply in plain English.",
        "You are an assistant for an English dictionary. Keep every answer short, precise and polite, and do not add anything else.",
        "Reply with the answer only.",
    ];

    /// <summary>
    /// `copyDrills` adds one drill per synset with an example: answer with a span of the user's message (its first or
    /// last word, a number or a capitalised word slipped into it, the whole sentence) — the copying an extraction task
    /// needs, which a model this small learns only from many such answers.
    /// </summary>
    public static List<Document> Generate(IReadOnlyList<Synset> synsets, int seed, bool copyDrills = false)
    {
        var random = new Random(seed);
        var documents = new List<Document>();
        foreach (var synset in synsets)
        {
            if (synset.Definition.Length == 0)
            {
                continue;
            }

            documents.Add(new TextDocument(Text(synset, random)));
            var turns = new List<ChatTurn>();
            if (random.NextDouble() < 0.25)
            {
                turns.Add(new ChatTurn("system", SystemPrompts[random.Next(SystemPrompts.Length)]));
            }

            var exchanges = random.NextDouble() < 0.3 ? 2 : 1;
            for (var i = 0; i < exchanges; i++)
            {
                var (question, answer) = Task(synset, random);
                turns.Add(new ChatTurn("user", question));
                turns.Add(new ChatTurn("assistant", answer));
            }

            documents.Add(new ChatDocument(turns));
            if (copyDrills && synset.Examples.Count > 0)
            {
                var (question, answer) = CopyDrill(synset.Examples[random.Next(synset.Examples.Count)], synsets, random);
                documents.Add(new ChatDocument([new ChatTurn("user", question), new ChatTurn("assistant", answer)]));
            }
        }

        random.Shuffle(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(documents));
        return documents;
    }

    /// <summary>Every text of the corpus (what the tokenizer is trained on).</summary>
    public static IEnumerable<string> Texts(IEnumerable<Document> documents) => documents.SelectMany(document => document switch
    {
        TextDocument text => [text.Text],
        ChatDocument chat => chat.Messages.Select(message => message.Content),
        _ => [],
    });

    private static string Text(Synset synset, Random random)
    {
        var word = synset.Words[0];
        var text = random.Next(3) switch
        {
            0 => $"{word} ({synset.PartOfSpeech}): {synset.Definition}.",
            1 => $"{Capitalise(word)}: {synset.Definition}.",
            _ => synset.Words.Count > 1 ? $"{string.Join(", ", synset.Words)}: {synset.Definition}." : $"{Capitalise(word)} means {synset.Definition}.",
        };
        if (synset.PartOfSpeech == "noun" && synset.Hypernyms.Count > 0)
        {
            text += $" {Capitalise(Article(word))} {word} is a kind of {synset.Hypernyms[0]}.";
        }

        foreach (var example in synset.Examples)
        {
            text += $" {Sentence(example)}";
        }

        return text;
    }

    private static (string Question, string Answer) Task(Synset synset, Random random)
    {
        var word = synset.Words[random.Next(synset.Words.Count)];
        var definition = synset.Definition;
        var example = synset.Examples.Count > 0 ? synset.Examples[random.Next(synset.Examples.Count)] : null;
        var inExample = example is null ? null : FindWord(example, synset.Words);
        var choices = new List<Func<(string, string)>>
        {
            () => (Pick(random, $"What does {word} mean?", $"Define {word}.", $"What is the meaning of \"{word}\"?", word, $"What is {Article(word)} {word}?",
                $"Explain {word} in a few words.", $"meaning of {word}", $"{Capitalise(word)}?", $"Tell me about {word}."), Capitalise(definition) + "."),
            () => (Pick(random, $"Which word means \"{definition}\"?", $"What is the word for: {definition}", $"Name the word: {definition}.",
                $"One word for \"{definition}\"?"), word),
            () => (Pick(random, $"Is \"{word}\" a noun, a verb, an adjective or an adverb?", $"Part of speech of {word}: noun, verb, adjective or adverb?",
                $"{word}: noun, verb, adjective or adverb?"), synset.PartOfSpeech),
        };
        if (example is not null)
        {
            choices.Add(() => (Pick(random, $"Use \"{word}\" in a sentence.", $"Give an example sentence with {word}.", $"An example of {word}, please."), Sentence(example)));
            choices.Add(() => (Pick(random, $"Repeat exactly: {example}", $"Copy this: {example}", $"Say it back: {example}"), example));
        }

        if (inExample is not null)
        {
            choices.Add(() => (Pick(random, $"In the sentence \"{example}\", which word means \"{definition}\"?", $"{Sentence(example!)}\nWhich word in that sentence means {definition}?",
                $"Find the word for \"{definition}\" in: {example}"), inExample));
        }

        if (synset.Words.Count > 1)
        {
            var other = synset.Words.First(candidate => candidate != word);
            choices.Add(() => (Pick(random, $"Give a synonym of {word}.", $"Another word for {word}?", $"What is a synonym for \"{word}\"?"), other));
        }

        if (synset.PartOfSpeech == "noun" && synset.Hypernyms.Count > 0)
        {
            choices.Add(() => (Pick(random, $"What kind of thing is {Article(word)} {word}?", $"{Capitalise(word)} is a kind of what?"), synset.Hypernyms[0]));
        }

        return choices[random.Next(choices.Count)]();
    }

    private static (string Question, string Answer) CopyDrill(string sentence, IReadOnlyList<Synset> synsets, Random random)
    {
        var words = sentence.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        switch (random.Next(5))
        {
            case 0:
                return (Pick(random, $"What is the first word of: {sentence}", $"First word of \"{sentence}\"?"), words[0].Trim(',', '.', ';', '!', '?', '"'));
            case 1:
                return (Pick(random, $"What is the last word of: {sentence}", $"Last word of \"{sentence}\"?"), words[^1].Trim(',', '.', ';', '!', '?', '"'));
            case 2:
            {
                var number = random.Next(10, 1_000_000).ToString(CultureInfo.InvariantCulture);
                var at = random.Next(words.Length + 1);
                var text = string.Join(' ', words.Take(at).Append(number).Concat(words.Skip(at)));
                return (Pick(random, $"Which number is in this text? {text}", $"{text}\nWhat is the number?", $"Find the number: {text}"), number);
            }

            case 3:
            {
                // A capitalised word from elsewhere in WordNet, slipped into the sentence.
                var other = synsets[random.Next(synsets.Count)].Words[0].Split(' ')[0];
                var name = Capitalise(other);
                var at = random.Next(words.Length + 1);
                var text = string.Join(' ', words.Take(at).Append(name).Concat(words.Skip(at)));
                return (Pick(random, $"Which word starts with a capital letter here? {text}", $"{text}\nQuote the capitalised word.", $"Capitalised word in: {text}"), name);
            }

            default:
                return (Pick(random, $"Repeat exactly: {sentence}", $"Copy this: {sentence}", $"Say it back: {sentence}"), sentence);
        }
    }

    /// <summary>The first of the synset's words that occurs in the sentence as a whole word, as it is written there.</summary>
    private static string? FindWord(string sentence, IReadOnlyList<string> words)
    {
        foreach (var word in words)
        {
            var match = Regex.Match(sentence, $@"\b{Regex.Escape(word)}\b", RegexOptions.IgnoreCase | RegexOptions.CultureInvariant);
            if (match.Success)
            {
                return match.Value;
            }
        }

        return null;
    }

    private static string Pick(Random random, params string[] options) => options[random.Next(options.Length)];

    private static string Article(string word) => word.Length > 0 && "aeiou".Contains(char.ToLowerInvariant(word[0]), StringComparison.Ordinal) ? "an" : "a";

    private static string Capitalise(string text) => text.Length == 0 ? text : char.ToUpper(text[0], CultureInfo.InvariantCulture) + text[1..];

    private static string Sentence(string text)
    {
        var sentence = Capitalise(text);
        return sentence.Length > 0 && ".!?".Contains(sentence[^1], StringComparison.Ordinal) ? sentence : sentence + ".";
    }
}
