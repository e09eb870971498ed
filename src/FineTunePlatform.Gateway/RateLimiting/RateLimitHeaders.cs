using System.Globalization;
using FineTunePlatform.Gateway.OpenAI;

namespace FineTunePlatform.Gateway.RateLimiting;

/// <summary>OpenAI's rate-limit headers and its 429 answer.</summary>
public static class RateLimitHeaders
{
    public static void Apply(HttpResponse response, RateLimitDecision decision)
    {
        var headers = response.Headers;
        if (decision.LimitRequests is { } requests)
        {
            headers["x-ratelimit-limit-requests"] = requests.ToString(CultureInfo.InvariantCulture);
            headers["x-ratelimit-remaining-requests"] = decision.RemainingRequests!.Value.ToString(CultureInfo.InvariantCulture);
            headers["x-ratelimit-reset-requests"] = Duration(decision.ResetRequests);
        }

        if (decision.LimitTokens is { } tokens)
        {
            headers["x-ratelimit-limit-tokens"] = tokens.ToString(CultureInfo.InvariantCulture);
            headers["x-ratelimit-remaining-tokens"] = decision.RemainingTokens!.Value.ToString(CultureInfo.InvariantCulture);
            headers["x-ratelimit-reset-tokens"] = Duration(decision.ResetTokens);
        }

        if (!decision.Allowed && !decision.ExceedsLimit)
        {
            headers.RetryAfter = Math.Max(1, (int)Math.Ceiling(decision.RetryAfter.TotalSeconds)).ToString(CultureInfo.InvariantCulture);
            headers["retry-after-ms"] = ((long)Math.Ceiling(decision.RetryAfter.TotalMilliseconds)).ToString(CultureInfo.InvariantCulture);
        }
    }

    /// <summary>The answer to a refused request: a 400 when it can never fit (<see cref="RateLimitDecision.ExceedsLimit"/>), else a 429.</summary>
    public static IResult Refusal(RateLimitDecision decision) => decision.ExceedsLimit
        ? OpenAIErrors.BadRequest(TooLargeMessage(decision), null, "request_too_large")
        : TooManyRequests(decision);

    public static string TooLargeMessage(RateLimitDecision decision) =>
        $"Request too large for {decision.ExceededScope}. The request exceeds the limit however long it waits: reduce the prompt or max_tokens / max_completion_tokens.";

    private static IResult TooManyRequests(RateLimitDecision decision) => OpenAIErrors.Result(
        StatusCodes.Status429TooManyRequests,
        $"Rate limit reached for {decision.ExceededScope}. Please try again in {Duration(decision.RetryAfter)}.",
        decision.ExceededScope?.Contains("TPM", StringComparison.Ordinal) == true ? "tokens" : "requests",
        null,
        "rate_limit_exceeded");

    /// <summary>OpenAI's duration format: 20ms, 1s, 6m0s.</summary>
    public static string Duration(TimeSpan span)
    {
        if (span < TimeSpan.FromSeconds(1))
        {
            return $"{Math.Max(0, (int)Math.Ceiling(span.TotalMilliseconds))}ms";
        }

        var seconds = (int)Math.Ceiling(span.TotalSeconds);
        return seconds < 60 ? $"{seconds}s" : $"{seconds / 60}m{seconds % 60}s";
    }
}
