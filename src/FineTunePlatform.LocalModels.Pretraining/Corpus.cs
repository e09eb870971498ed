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

    /// <summary>
    /// The third stage's corpus: the two skills a first fine-tune needs and a base this small does not pick up from
    /// dictionary text. Routing drills: a message about a noun (the word, its definition or an example sentence, in a
    /// frame of other text, numbers and names) answered with its WordNet topic among 2 to 8 topics, named in a system
    /// prompt half of the time, so the answer depends on the message's content word and not on its wording, length or
    /// position. Copying drills for every synset (a number, a capitalised word, the first or last word, the whole
    /// text). A quarter of the synsets keep their dictionary text and chat task, so the base keeps its English.
    /// </summary>
    public static List<Document> GenerateDrills(IReadOnlyList<Synset> synsets, int seed)
    {
        var random = new Random(seed);
        var byTopic = RoutingTopics.ToDictionary(topic => topic, topic => synsets.Where(synset => synset.Topic == $"noun.{topic}" && synset.Definition.Length > 0).ToList());
        var frames = synsets.Where(synset => synset.PartOfSpeech != "noun").SelectMany(synset => synset.Examples).Where(example => example.Length < 80).ToList();
        var documents = new List<Document>();
        foreach (var synset in synsets)
        {
            if (synset.Definition.Length == 0)
            {
                continue;
            }

            if (random.NextDouble() < EnglishShare)
            {
                documents.Add(new TextDocument(Text(synset, random)));
                var (question, answer) = Task(synset, random);
                documents.Add(new ChatDocument([new ChatTurn("user", question), new ChatTurn("assistant", answer)]));
            }

            var copySource = synset.Examples.Count > 0 && random.NextDouble() < 0.5 ? synset.Examples[random.Next(synset.Examples.Count)] : Capitalise(synset.Definition) + ".";
            var (copyQuestion, copyAnswer) = CopyDrill(copySource, synsets, random);
            documents.Add(new ChatDocument([new ChatTurn("user", copyQuestion), new ChatTurn("assistant", copyAnswer)]));
        }

        // Routing: RoutingShare drills per noun synset of the topics, the topics drawn evenly.
        var drills = (int)(byTopic.Values.Sum(list => list.Count) * RoutingShare);
        for (var i = 0; i < drills; i++)
        {
            var labels = RoutingTopics.OrderBy(_ => random.Next()).Take(random.Next(2, 9)).ToList();
            var turns = new List<ChatTurn>();
            if (random.NextDouble() < 0.5)
            {
                var named = string.Join(", ", labels);
                turns.Add(new ChatTurn("system", Pick(random, $"Classify each message as one of: {named}. Answer with the label only.",
                    $"Topics: {named}. Reply with one of them.", $"You sort messages by topic ({named}). One word.",
                    $"Label the text with its topic. Possible labels are {named}.")));
            }

            var exchanges = random.NextDouble() < 0.2 ? random.Next(2, 4) : 1;
            for (var e = 0; e < exchanges; e++)
            {
                var label = labels[random.Next(labels.Count)];
                var pool = byTopic[label];
                var noun = pool[random.Next(pool.Count)];
                turns.Add(new ChatTurn("user", RoutingMessage(noun, frames, synsets, random)));
                turns.Add(new ChatTurn("assistant", label));
            }

            documents.Add(new ChatDocument(turns));
        }

        random.Shuffle(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(documents));
        return documents;
    }

    // The shipped mix. A second run of 1,500 steps with every dictionary text and half as many routing drills kept the
    // base a better open chatter ("hello" got an English sentence instead of a topic label) but fine-tuned worse
    // (route-4 at 100 examples 80% instead of 90%; docs/local-models.md has both).
    private const double EnglishShare = 0.25;
    private const double RoutingShare = 1.0;

    /// <summary>WordNet's noun topics with a few thousand synsets or more, by the label a routing drill answers.</summary>
    private static readonly string[] RoutingTopics =
    [
        "act", "animal", "artifact", "attribute", "body", "cognition", "communication", "event", "feeling", "food", "group",
        "location", "object", "person", "plant", "possession", "quantity", "state", "substance", "time",
    ];

    /// <summary>A message whose topic is `noun`'s: its word, definition or example, in a frame that carries no topic.</summary>
    private static string RoutingMessage(Synset noun, List<string> frames, IReadOnlyList<Synset> synsets, Random random)
    {
        var word = noun.Words[random.Next(noun.Words.Count)];
        var core = random.Next(5) switch
        {
            0 => word,
            1 => noun.Definition,
            2 => $"{word}: {noun.Definition}",
            3 when noun.Examples.Count > 0 => noun.Examples[random.Next(noun.Examples.Count)],
            _ => $"{Pick(random, "the", "my", "a", "this", "our", "that")} {word}",
        };
        var parts = new List<string> { core };
        if (random.NextDouble() < 0.5)
        {
            parts.Insert(random.Next(2), frames[random.Next(frames.Count)]);
        }

        if (random.NextDouble() < 0.3)
        {
            parts.Insert(random.Next(parts.Count + 1), random.Next(10, 1_000_000).ToString(CultureInfo.InvariantCulture));
        }

        if (random.NextDouble() < 0.2)
        {
            parts.Insert(random.Next(parts.Count + 1), Capitalise(synsets[random.Next(synsets.Count)].Words[0].Split(' ')[0]));
        }

        var text = string.Join(Pick(random, " ", ", ", ". ", " - ", " "), parts) + Pick(random, "", "", ".", "?", "!", "!!", " thanks");
        return random.Next(4) switch
        {
            0 => text.ToLowerInvariant(),
            1 => Capitalise(text),
            _ => text,
        };
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
                var number = random.Next(10, 10_000_000).ToString(CultureInfo.InvariantCulture);
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
