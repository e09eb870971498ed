using System.Collections.Concurrent;
using FineTunePlatform.Gateway.Auth;
using FineTunePlatform.Gateway.OpenAI;
using Microsoft.Extensions.Options;

namespace FineTunePlatform.Gateway.RateLimiting;

/// <summary>
/// Long-lived event streams open per key (`Gateway:RateLimits:ConcurrentStreamsPerKey`, 20 by default): a stream
/// costs a connection and an internal gRPC call for as long as it lasts, which requests-per-minute does not see.
/// Per gateway process.
/// </summary>
public sealed class ConcurrentStreams(IOptions<RateLimitDefaults> defaults)
{
    private readonly ConcurrentDictionary<string, int> _open = new();

    /// <summary>A lease to dispose when the stream ends, or null when the key already holds its limit.</summary>
    public IDisposable? TryAcquire(string keyId)
    {
        var limit = defaults.Value.ConcurrentStreamsPerKey;
        while (true)
        {
            var open = _open.GetOrAdd(keyId, 0);
            if (open >= limit)
            {
                return null;
            }

            if (_open.TryUpdate(keyId, open + 1, open))
            {
                return new Lease(this, keyId);
            }
        }
    }

    public int OpenFor(string keyId) => _open.TryGetValue(keyId, out var open) ? open : 0;

    public static IResult TooMany() => OpenAIErrors.Result(StatusCodes.Status429TooManyRequests,
        "Too many concurrent event streams for this API key; close one before opening another.", OpenAIErrors.RateLimitError, null, "too_many_streams");

    private void Release(string keyId)
    {
        while (true)
        {
            var open = _open[keyId];
            if (open == 1 ? ((ICollection<KeyValuePair<string, int>>)_open).Remove(new(keyId, 1)) : _open.TryUpdate(keyId, open - 1, open))
            {
                return;
            }
        }
    }

    private sealed class Lease(ConcurrentStreams owner, string keyId) : IDisposable
    {
        private int _disposed;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _disposed, 1) == 0)
            {
                owner.Release(keyId);
            }
        }
    }
}
