using FineTunePlatform.Gateway.Auth;
using StackExchange.Redis;

namespace FineTunePlatform.Gateway.RateLimiting;

/// <summary>
/// Admits a request against its project's and its key's requests-per-minute and tokens-per-minute limits (token
/// buckets refilled continuously), in Redis when it answers and in this process when it does not.
/// </summary>
public sealed partial class RequestRateLimiter(RedisTokenBuckets redis, LocalTokenBuckets local, TimeProvider time, ILogger<RequestRateLimiter> logger)
{
    private long _lastWarningTicks;

    public async Task<RateLimitDecision> AdmitAsync(KeyIdentity identity, long estimatedTokens)
    {
        var buckets = new List<BucketRequest>(4);
        void Add(string scope, string id, int? requests, int? tokens)
        {
            if (requests is > 0)
            {
                buckets.Add(new BucketRequest($"{scope}:{id}:rpm", scope, false, requests.Value, 1));
            }

            if (tokens is > 0)
            {
                buckets.Add(new BucketRequest($"{scope}:{id}:tpm", scope, true, tokens.Value, estimatedTokens));
            }
        }

        Add("project", identity.ProjectId, identity.ProjectLimits.RequestsPerMinute, identity.ProjectLimits.TokensPerMinute);
        Add("key", identity.KeyId, identity.KeyLimits.RequestsPerMinute, identity.KeyLimits.TokensPerMinute);
        if (buckets.Count == 0)
        {
            return RateLimitDecision.Unlimited;
        }

        // Checked before charging anything: a request larger than a bucket's capacity is refused outright.
        if (buckets.Find(bucket => bucket.Cost > bucket.PerMinute) is { } tooLarge)
        {
            return RateLimitDecision.Unlimited with
            {
                Allowed = false,
                ExceedsLimit = true,
                ExceededScope = $"{tooLarge.Scope} {(tooLarge.IsTokens ? "tokens per min (TPM)" : "requests per min (RPM)")}: Limit {tooLarge.PerMinute}, Requested {tooLarge.Cost}",
            };
        }

        var now = time.GetUtcNow();
        (bool Allowed, long[] Remaining) taken;
        try
        {
            taken = await redis.TakeAsync(buckets, now);
        }
        catch (Exception ex) when (ex is RedisException or RedisTimeoutException or TimeoutException or ObjectDisposedException)
        {
            WarnDegraded(ex);
            taken = local.Take(buckets, now);
        }

        var decision = Decide(buckets, taken.Allowed, taken.Remaining);
        if (!decision.Allowed)
        {
            PlatformMetrics.RateLimitRejections.Add(1, new KeyValuePair<string, object?>("project", identity.ProjectId),
                new KeyValuePair<string, object?>("limit", decision.ExceededScope));
        }

        return decision;
    }

    private static RateLimitDecision Decide(List<BucketRequest> buckets, bool allowed, long[] remaining)
    {
        // Headers report the tightest bucket of each kind; retry-after is when the short bucket has room again.
        (long? Limit, long? Remaining, TimeSpan Reset) Tightest(bool tokens)
        {
            var indexes = Enumerable.Range(0, buckets.Count).Where(i => buckets[i].IsTokens == tokens).ToList();
            if (indexes.Count == 0)
            {
                return (null, null, TimeSpan.Zero);
            }

            var i = indexes.MinBy(index => remaining[index]);
            var perMs = buckets[i].PerMinute / 60_000.0;
            return (buckets[i].PerMinute, Math.Max(0, remaining[i]), TimeSpan.FromMilliseconds(Math.Ceiling((buckets[i].PerMinute - remaining[i]) / perMs)));
        }

        var requests = Tightest(tokens: false);
        var tokensLimit = Tightest(tokens: true);
        TimeSpan retryAfter = TimeSpan.Zero;
        string? exceeded = null;
        if (!allowed)
        {
            for (var i = 0; i < buckets.Count; i++)
            {
                if (remaining[i] < buckets[i].Cost)
                {
                    var wait = TimeSpan.FromMilliseconds(Math.Ceiling((buckets[i].Cost - remaining[i]) / (buckets[i].PerMinute / 60_000.0)));
                    if (wait > retryAfter)
                    {
                        retryAfter = wait;
                        exceeded = $"{buckets[i].Scope} {(buckets[i].IsTokens ? "tokens per min (TPM)" : "requests per min (RPM)")}: Limit {buckets[i].PerMinute}, Remaining {Math.Max(0, remaining[i])}, Requested {buckets[i].Cost}";
                    }
                }
            }
        }

        return new RateLimitDecision(allowed, requests.Limit, requests.Remaining, requests.Reset, tokensLimit.Limit, tokensLimit.Remaining, tokensLimit.Reset, retryAfter, exceeded);
    }

    private void WarnDegraded(Exception exception)
    {
        var now = Environment.TickCount64;
        var last = Interlocked.Read(ref _lastWarningTicks);
        if (now - last > 60_000 && Interlocked.CompareExchange(ref _lastWarningTicks, now, last) == last)
        {
            LogDegraded(logger, exception);
        }
    }

    [LoggerMessage(LogLevel.Warning, "Redis is unreachable: rate limits are enforced per gateway process until it answers again")]
    private static partial void LogDegraded(ILogger logger, Exception exception);
}
