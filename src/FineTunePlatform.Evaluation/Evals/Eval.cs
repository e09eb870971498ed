namespace FineTunePlatform.Evaluation.Evals;

/// <summary>
/// An eval: the schema of the items it grades and its testing criteria (graders). Runs sample and grade against it.
/// The JSON columns hold the canonical OpenAI forms the service validated (see <see cref="EvalDefinition"/>).
/// </summary>
public sealed class Eval
{
    public required string Id { get; init; }

    public required string ProjectId { get; init; }

    public required string Name { get; set; }

    /// <summary>{"type":"custom","schema":{...}}: the item schema wrapped as OpenAI returns it.</summary>
    public required string DataSourceConfig { get; init; }

    /// <summary>The item schema runs validate their items against.</summary>
    public required string ItemSchema { get; init; }

    /// <summary>The testing criteria as a JSON array, each grader with its name.</summary>
    public required string TestingCriteria { get; init; }

    /// <summary>A JSON object of string values.</summary>
    public required string Metadata { get; set; }

    public DateTimeOffset CreatedAt { get; init; }

    public DateTimeOffset UpdatedAt { get; set; }
}
