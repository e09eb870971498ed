using System.Globalization;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace FineTunePlatform.Evaluation.Graders;

/// <summary>
/// A grader that asks a model (any model the run's project may call, through the gateway): an instruction saying
/// how to answer, then its `input` messages, templates rendered with the item and sample.
/// </summary>
public abstract class ModelGrader(string name, string type, string model, IReadOnlyList<PromptMessage> input, SamplingParams sampling) : Grader(name, type)
{
    public string Model { get; } = model;

    public override async ValueTask<GraderResult> GradeAsync(GradingInput item, IChatModel judge, CancellationToken cancellationToken)
    {
        // The answering instruction leads, so the criterion's own messages (ending with what is judged) come last.
        List<PromptMessage> messages = [new PromptMessage("system", Instruction), .. input.Select(message => message with { Content = ItemTemplate.Render(message.Content, item) })];
        var reply = await judge.CompleteAsync(Model, messages, sampling, cancellationToken);
        var (score, passed, verdict) = Judge(reply.Content);
        return new GraderResult(score, passed, new JsonObject
        {
            ["model"] = Model,
            ["output"] = reply.Content,
            ["verdict"] = verdict,
        });
    }

    /// <summary>The leading instruction: how the model must answer.</summary>
    protected abstract string Instruction { get; }

    /// <summary>Reads the model's answer.</summary>
    protected abstract (double Score, bool Passed, JsonNode? Verdict) Judge(string answer);
}

/// <summary>OpenAI's label_model: the model picks one of `labels`; the item passes when it is one of `passing_labels`.</summary>
public sealed class LabelModelGrader(string name, string model, IReadOnlyList<PromptMessage> input, IReadOnlyList<string> labels, IReadOnlyList<string> passingLabels)
    : ModelGrader(name, "label_model", model, input, new SamplingParams(0, null, 16, null))
{
    protected override string Instruction => $"Answer with exactly one of these labels and nothing else: {string.Join(", ", labels)}.";

    protected override (double Score, bool Passed, JsonNode? Verdict) Judge(string answer)
    {
        var trimmed = answer.Trim().Trim('"', '\'', '.', '`').Trim();
        // An exact answer first; otherwise the label the answer mentions earliest (a chatty model still counts).
        var label = labels.FirstOrDefault(candidate => string.Equals(candidate, trimmed, StringComparison.OrdinalIgnoreCase))
            ?? labels.Select(candidate => (candidate, at: answer.IndexOf(candidate, StringComparison.OrdinalIgnoreCase)))
                .Where(found => found.at >= 0).OrderBy(found => found.at).Select(found => found.candidate).FirstOrDefault();
        var passed = label is not null && passingLabels.Contains(label, StringComparer.Ordinal);
        return (passed ? 1 : 0, passed, label);
    }
}

/// <summary>OpenAI's score_model: the model answers a number in `range`; the item passes at `pass_threshold`.</summary>
public sealed partial class ScoreModelGrader(string name, string model, IReadOnlyList<PromptMessage> input, double min, double max, double passThreshold, SamplingParams sampling)
    : ModelGrader(name, "score_model", model, input, sampling)
{
    [GeneratedRegex(@"-?\d+(?:\.\d+)?")]
    private static partial Regex Number();

    protected override string Instruction =>
        $"Answer with a single number from {min.ToString(CultureInfo.InvariantCulture)} to {max.ToString(CultureInfo.InvariantCulture)} and nothing else.";

    protected override (double Score, bool Passed, JsonNode? Verdict) Judge(string answer)
    {
        var match = Number().Match(answer);
        if (!match.Success)
        {
            // No number is the lowest score: an unusable answer never passes.
            return (min, false, null);
        }

        var score = Math.Clamp(double.Parse(match.Value, CultureInfo.InvariantCulture), min, max);
        return (score, score >= passThreshold, score);
    }
}
