using System.Globalization;
using StackExchange.Redis;

namespace FineTunePlatform.Gateway.RateLimiting;

/// <summary>
/// Token buckets in Redis, checked and charged for all of a request's buckets (project and key, requests and tokens)
/// in one Lua script, so concurrent gateways never admit more than the limit: either every bucket has room and all
/// are charged, or none is.
/// </summary>
public sealed class RedisTokenBuckets(IConnectionMultiplexer redis)
{
    // KEYS: buckets. ARGV[1]: now (ms); then per bucket: capacity, refill per ms, cost.
    // Returns: allowed (1/0), then per bucket the tokens left (floored) after this request.
    private const string Script = """
        local now = tonumber(ARGV[1])
        local level = {}
        local allowed = 1
        for i = 1, #KEYS do
          local capacity = tonumber(ARGV[i * 3 - 1])
          local rate = tonumber(ARGV[i * 3])
          local cost = tonumber(ARGV[i * 3 + 1])
          local state = redis.call('HMGET', KEYS[i], 't', 'at')
          local tokens = tonumber(state[1]) or capacity
          local at = tonumber(state[2]) or now
          tokens = math.min(capacity, tokens + math.max(0, now - at) * rate)
          level[i] = tokens
          if tokens < cost then allowed = 0 end
        end
        local result = { allowed }
        for i = 1, #KEYS do
          local capacity = tonumber(ARGV[i * 3 - 1])
          local rate = tonumber(ARGV[i * 3])
          local cost = tonumber(ARGV[i * 3 + 1])
          if allowed == 1 then level[i] = level[i] - cost end
          redis.call('HSET', KEYS[i], 't', tostring(level[i]), 'at', tostring(now))
          redis.call('PEXPIRE', KEYS[i], math.ceil(capacity / rate) + 1000)
          result[i + 1] = math.floor(level[i])
        end
        return result
        """;

    public async Task<(bool Allowed, long[] Remaining)> TakeAsync(IReadOnlyList<BucketRequest> buckets, DateTimeOffset now)
    {
        if (!redis.IsConnected)
        {
            // Fail at once rather than queue behind the reconnect: the caller falls back to local buckets.
            throw new RedisConnectionException(ConnectionFailureType.UnableToConnect, "Redis is not connected");
        }

        var keys = buckets.Select(bucket => (RedisKey)("ratelimit:" + bucket.Key)).ToArray();
        var arguments = new List<RedisValue> { now.ToUnixTimeMilliseconds() };
        foreach (var bucket in buckets)
        {
            arguments.Add(bucket.PerMinute);
            arguments.Add((bucket.PerMinute / 60_000.0).ToString("R", CultureInfo.InvariantCulture));
            arguments.Add(bucket.Cost);
        }

        var result = (RedisResult[])(await redis.GetDatabase().ScriptEvaluateAsync(Script, keys, [.. arguments]))!;
        return ((long)result[0] == 1, result.Skip(1).Select(value => (long)value).ToArray());
    }
}
