namespace FineTunePlatform.Gateway.StoredCompletions;

/// <summary>
/// A chat completion a project asked to keep (`store: true`): what was asked, what was answered, and the metadata
/// it is found by. The gateway owns these because it serves chat: storing needs no call to another service.
/// </summary>
public sealed class StoredCompletion
{
    /// <summary>The `chatcmpl-` id the caller received (the gateway's own, never an upstream provider's).</summary>
    public required string Id { get; init; }

    public required string ProjectId { get; init; }

    public required string Model { get; init; }

    /// <summary>The completion's `created` (unix seconds), what lists order and filter by.</summary>
    public long Created { get; init; }

    /// <summary>Insertion order (assigned by the database): orders completions created in the same second.</summary>
    public long Sequence { get; init; }

    /// <summary>The `x-request-id` of the chat request that produced it.</summary>
    public required string RequestId { get; init; }

    /// <summary>The request's `messages`, as sent (JSON array).</summary>
    public required string InputMessages { get; init; }

    /// <summary>The `chat.completion` object as returned (JSON; for a stream, assembled from its chunks).</summary>
    public required string Completion { get; init; }

    /// <summary>OpenAI's metadata (JSON object of strings), the only thing an update may change.</summary>
    public required string Metadata { get; set; }
}
