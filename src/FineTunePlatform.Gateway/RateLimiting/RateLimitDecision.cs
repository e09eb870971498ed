namespace FineTunePlatform.Gateway.RateLimiting;

/// <summary>The outcome of admitting one request: allowed or not, and what OpenAI's x-ratelimit-* headers report.</summary>
public sealed record RateLimitDecision(
    bool Allowed,
    long? LimitRequests,
    long? RemainingRequests,
    TimeSpan ResetRequests,
    long? LimitTokens,
    long? RemainingTokens,
    TimeSpan ResetTokens,
    TimeSpan RetryAfter,
    string? ExceededScope)
{
    public static readonly RateLimitDecision Unlimited = new(true, null, null, TimeSpan.Zero, null, null, TimeSpan.Zero, TimeSpan.Zero, null);

    /// <summary>
    /// The request costs more than a whole bucket holds, so no wait would ever admit it: a 400 saying so, not a 429
    /// with a retry-after that can never come true. <see cref="ExceededScope"/> says which limit and by how much.
    /// </summary>
    public bool ExceedsLimit { get; init; }
}

/// <summary>One token bucket to check: capacity per minute and what this request costs from it.</summary>
public sealed record BucketRequest(string Key, string Scope, bool IsTokens, long PerMinute, long Cost);
