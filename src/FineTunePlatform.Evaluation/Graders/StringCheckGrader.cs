namespace FineTunePlatform.Evaluation.Graders;

/// <summary>
/// OpenAI's string_check: compares the rendered `input` with the rendered `reference`: eq, ne, like (contains) or
/// ilike (contains, ignoring case). Score 1 when the check holds, else 0.
/// </summary>
public sealed class StringCheckGrader(string name, string input, string reference, string operation) : Grader(name, "string_check")
{
    public static readonly string[] Operations = ["eq", "ne", "like", "ilike"];

    public override ValueTask<GraderResult> GradeAsync(GradingInput item, IChatModel judge, CancellationToken cancellationToken)
    {
        var actual = ItemTemplate.Render(input, item);
        var expected = ItemTemplate.Render(reference, item);
        var holds = operation switch
        {
            "eq" => actual == expected,
            "ne" => actual != expected,
            "like" => actual.Contains(expected, StringComparison.Ordinal),
            _ => actual.Contains(expected, StringComparison.OrdinalIgnoreCase),
        };
        return ValueTask.FromResult(new GraderResult(holds ? 1 : 0, holds));
    }
}
