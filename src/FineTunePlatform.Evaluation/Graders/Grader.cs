using System.Text.Json.Nodes;

namespace FineTunePlatform.Evaluation.Graders;

/// <summary>One testing criterion of an eval: grades one item and its sample.</summary>
public abstract class Grader(string name, string type)
{
    public string Name { get; } = name;

    /// <summary>OpenAI's grader type: string_check, text_similarity, label_model, score_model.</summary>
    public string Type { get; } = type;

    /// <summary>`judge` answers the model graders' prompts (through the gateway, as the run's project).</summary>
    public abstract ValueTask<GraderResult> GradeAsync(GradingInput input, IChatModel judge, CancellationToken cancellationToken);
}

/// <summary>A grader's verdict; `Sample` carries what a model grader was asked and answered.</summary>
public sealed record GraderResult(double Score, bool Passed, JsonObject? Sample = null);

/// <summary>A chat model reached through the gateway's InferenceService on behalf of a run's project.</summary>
public interface IChatModel
{
    Task<ChatReply> CompleteAsync(string model, IReadOnlyList<PromptMessage> messages, SamplingParams sampling, CancellationToken cancellationToken);
}

public sealed record PromptMessage(string Role, string Content);

public sealed record SamplingParams(double? Temperature, double? TopP, int? MaxCompletionTokens, long? Seed)
{
    public static readonly SamplingParams Default = new(null, null, null, null);
}

public sealed record ChatReply(string Content, string FinishReason, int PromptTokens, int CompletionTokens);

/// <summary>A caller's mistake in an eval or run definition, reported with the JSON path of the offending field.</summary>
public sealed class InvalidEvalException(string message, string param) : Exception(message)
{
    public string Param { get; } = param;
}
