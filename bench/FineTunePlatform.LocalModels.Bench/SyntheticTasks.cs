using System.Globalization;

namespace FineTunePlatform.LocalModels.Bench;

/// <summary>One generated chat item: the prompt (system and user messages) and the one right answer.</summary>
internal sealed record TaskItem(IReadOnlyList<ChatTurn> Prompt, string Answer)
{
    public SupervisedExample Example => new([.. Prompt, new ChatTurn("assistant", Answer)]);
}

/// <summary>
/// Small tasks of the kind a user's first fine-tune is (shared by the quality bench and the end-to-end test):
/// support-ticket routing with 4 to 8 labels, with or without a system prompt naming them, and extraction of an
/// order number or of the customer's name from a message. Training and held-out items are built from disjoint
/// sentence templates, order numbers and (for names) disjoint name lists, so a held-out item's wording was never
/// seen in training; the label evidence (the topic's words) is shared, since these models know no synonyms.
/// </summary>
internal sealed class SyntheticTask
{
    private static readonly (string Label, string[] Words)[] Topics =
    [
        ("billing", ["invoice", "refund", "charge", "payment", "receipt", "bill"]),
        ("shipping", ["parcel", "delivery", "courier", "package", "tracking number", "shipment"]),
        ("account", ["password", "login", "username", "profile", "sign-in", "two-factor code"]),
        ("technical", ["crash", "error message", "bug", "freeze", "update", "blank screen"]),
        ("returns", ["return label", "exchange", "wrong size", "send it back", "return window", "damaged item"]),
        ("security", ["phishing email", "suspicious activity", "hacked", "stolen card", "fraud", "unknown device"]),
        ("sales", ["quote", "bulk order", "pricing", "discount", "business plan", "demo"]),
        ("feedback", ["suggestion", "compliment", "feature idea", "review", "great service", "survey"]),
    ];

    private static readonly string[] TrainTicketTemplates =
    [
        "my {0} is wrong", "problem with the {0} again", "hi, the {0} does not work", "please help, {0} issue",
        "question about my {0}", "{0} question from a customer", "I need help with the {0}", "the {0} is not ok, order {1}",
        "hello, {0} problem here", "can you fix my {0}?", "{0} trouble since monday", "about order {1}: {0}",
    ];

    private static readonly string[] HeldOutTicketTemplates =
    [
        "Hello team, I'm writing about the {0} on order {1}.", "Could someone look into my {0}? Thanks!", "urgent: {0}!!",
        "Since yesterday the {0} has been a problem for me.", "Good morning. Order {1}, {0}. Please advise.",
        "I have a concern regarding a {0}.", "{0} - what should I do now?", "Hi there, quick one on the {0} for {1}",
    ];

    private static readonly string[] TrainOrderTemplates =
    [
        "my order {0} has not arrived", "where is order {0}?", "order {0} is late", "please cancel order {0}",
        "I want to change order {0}", "status of order {0} please", "order number {0}, wrong item", "the order {0} came broken",
    ];

    private static readonly string[] HeldOutOrderTemplates =
    [
        "Hello, I placed order {0} last week and nothing came.", "Can you tell me what happened to {0}? It's been ages.",
        "Re: order {0} - the box was empty", "Hi! Quick question regarding my purchase {0}, thanks.",
        "I was charged twice for {0}, please check.",
    ];

    private static readonly string[] TrainNameTemplates =
    [
        "hi, this is {0}, my parcel is late", "{0} here, I need a refund", "my name is {0} and my login fails",
        "hello, {0} speaking, the app crashes", "it's {0}, please call me back", "{0} again, still no answer",
    ];

    private static readonly string[] HeldOutNameTemplates =
    [
        "Good afternoon, {0} writing about an invoice.", "Dear support, kind regards, {0}", "Hey! {0} from the Berlin office here.",
        "Thanks for your help. Best, {0}", "This is {0}. Could you reset my password?",
    ];

    private static readonly string[] TrainNames =
    [
        "Maria", "James", "Aisha", "Chen", "Olga", "Pedro", "Fatima", "Lukas", "Emma", "Noah", "Yuki", "Omar", "Sofia", "Ivan",
        "Grace", "Mateo", "Hana", "Liam", "Zara", "Felix", "Nina", "Rafael", "Ingrid", "Tomas", "Leila", "Oscar", "Mei", "Jonas",
    ];

    private static readonly string[] HeldOutNames =
    [
        "Amara", "Kenji", "Elena", "Samir", "Greta", "Diego", "Priya", "Anton", "Chloe", "Malik", "Astrid", "Bruno", "Ines", "Victor",
    ];

    private readonly Func<Random, bool, TaskItem> _make;

    private SyntheticTask(string name, string kind, Func<Random, bool, TaskItem> make)
    {
        Name = name;
        Kind = kind;
        _make = make;
    }

    public string Name { get; }

    /// <summary>classification or extraction.</summary>
    public string Kind { get; }

    /// <summary>Ticket routing among the first `labels` topics; with a system prompt that names the labels, or none.</summary>
    public static SyntheticTask Classification(int labels, bool systemPrompt)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan(labels, Topics.Length);
        var topics = Topics[..labels];
        var system = $"You route customer support tickets. Answer with exactly one word: {string.Join(", ", topics.Select(topic => topic.Label))}.";
        return new SyntheticTask($"route-{labels}{(systemPrompt ? "+system" : "")}", "classification", (random, heldOut) =>
        {
            var (label, words) = topics[random.Next(topics.Length)];
            var templates = heldOut ? HeldOutTicketTemplates : TrainTicketTemplates;
            var ticket = string.Format(CultureInfo.InvariantCulture, templates[random.Next(templates.Length)], words[random.Next(words.Length)], OrderNumber(random, heldOut));
            List<ChatTurn> prompt = systemPrompt ? [new ChatTurn("system", system), new ChatTurn("user", ticket)] : [new ChatTurn("user", ticket)];
            return new TaskItem(prompt, label);
        });
    }

    /// <summary>The order number in a customer's message (training and held-out numbers come from disjoint ranges).</summary>
    public static SyntheticTask OrderNumber() => new("extract-order", "extraction", (random, heldOut) =>
    {
        var number = OrderNumber(random, heldOut);
        var templates = heldOut ? HeldOutOrderTemplates : TrainOrderTemplates;
        return new TaskItem([new ChatTurn("user", string.Format(CultureInfo.InvariantCulture, templates[random.Next(templates.Length)], number))], number);
    });

    /// <summary>The customer's first name (held-out names never occur in training).</summary>
    public static SyntheticTask CustomerName() => new("extract-name", "extraction", (random, heldOut) =>
    {
        var names = heldOut ? HeldOutNames : TrainNames;
        var name = names[random.Next(names.Length)];
        var templates = heldOut ? HeldOutNameTemplates : TrainNameTemplates;
        return new TaskItem(
        [
            new ChatTurn("system", "Reply with the customer's first name only."),
            new ChatTurn("user", string.Format(CultureInfo.InvariantCulture, templates[random.Next(templates.Length)], name)),
        ], name);
    });

    public List<TaskItem> Items(int count, int seed, bool heldOut)
    {
        var random = new Random((seed * 7919) + (heldOut ? 1 : 0));
        return Enumerable.Range(0, count).Select(_ => _make(random, heldOut)).ToList();
    }

    private static string OrderNumber(Random random, bool heldOut) =>
        (heldOut ? random.Next(60_000, 99_999) : random.Next(10_000, 59_999)).ToString(CultureInfo.InvariantCulture);
}
