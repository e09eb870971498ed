namespace FineTunePlatform.Gateway.RateLimiting;

/// <summary>
/// The same buckets held in this process, used while Redis is unreachable: limits then apply per gateway replica
/// instead of platform-wide, which keeps inference up rather than failing closed.
/// </summary>
public sealed class LocalTokenBuckets
{
    private readonly Dictionary<string, (double Tokens, long AtMs)> _buckets = [];
    private readonly Lock _gate = new();

    public (bool Allowed, long[] Remaining) Take(IReadOnlyList<BucketRequest> buckets, DateTimeOffset now)
    {
        var nowMs = now.ToUnixTimeMilliseconds();
        lock (_gate)
        {
            var levels = new double[buckets.Count];
            var allowed = true;
            for (var i = 0; i < buckets.Count; i++)
            {
                var bucket = buckets[i];
                var rate = bucket.PerMinute / 60_000.0;
                var (tokens, at) = _buckets.TryGetValue(bucket.Key, out var state) ? state : (bucket.PerMinute, nowMs);
                levels[i] = Math.Min(bucket.PerMinute, tokens + (Math.Max(0, nowMs - at) * rate));
                allowed &= levels[i] >= bucket.Cost;
            }

            var remaining = new long[buckets.Count];
            for (var i = 0; i < buckets.Count; i++)
            {
                if (allowed)
                {
                    levels[i] -= buckets[i].Cost;
                }

                _buckets[buckets[i].Key] = (levels[i], nowMs);
                remaining[i] = (long)Math.Floor(levels[i]);
            }

            return (allowed, remaining);
        }
    }
}
