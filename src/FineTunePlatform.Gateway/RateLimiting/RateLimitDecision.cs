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
}

/// <summary>One token bucket to check: capacity per minute and what this request costs from it.</summary>
public sealed record BucketRequest(string Key, string Scope, bool IsTokens, long PerMinute, long Cost);
