namespace FineTunePlatform.LocalModels.Tests;

/// <summary>A generated task: support tickets whose keyword decides one of four queues.</summary>
internal static class TicketTask
{
    public static readonly string[] Categories = ["billing", "shipping", "account", "technical"];

    private static readonly string[][] Keywords =
    [
        ["invoice", "refund", "charge", "payment", "receipt"],
        ["parcel", "delivery", "courier", "package", "tracking"],
        ["password", "login", "username", "profile", "email"],
        ["crash", "error", "bug", "freeze", "update"],
    ];

    private static readonly string[] Templates =
    [
        "my {0} is wrong",
        "problem with the {0} again",
        "hi, the {0} does not work",
        "please help, {0} issue",
        "why is my {0} late",
        "{0} question from a customer",
    ];

    public static List<(SupervisedExample Example, string Category)> Generate(int count, int seed)
    {
        var random = new Random(seed);
        var examples = new List<(SupervisedExample, string)>();
        for (var i = 0; i < count; i++)
        {
            var category = random.Next(Categories.Length);
            var ticket = string.Format(System.Globalization.CultureInfo.InvariantCulture, Templates[random.Next(Templates.Length)], Keywords[category][random.Next(Keywords[category].Length)]);
            examples.Add((new SupervisedExample(
            [
                new ChatTurn("user", ticket),
                new ChatTurn("assistant", Categories[category]),
            ]), Categories[category]));
        }

        return examples;
    }

    public static double ExactMatch(TransformerModel model, IEnumerable<(SupervisedExample Example, string Category)> heldOut) =>
        heldOut.Average(item => Generator.Complete(model, [item.Example.Messages[0]], new SamplingOptions(Temperature: 0, MaxTokens: 16)).Text == item.Category ? 1.0 : 0.0);
}
