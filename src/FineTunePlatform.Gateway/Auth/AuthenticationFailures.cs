using System.Collections.Concurrent;
using System.Net;

namespace FineTunePlatform.Gateway.Auth;

/// <summary>
/// Failed authentications per client address. Anonymous traffic decides how often authentication fails, so a failure
/// must cost little: no log line of its own (one summary line per address per <see cref="SummaryInterval"/>), and
/// past <see cref="FailuresPerSecond"/> in one second an address is answered 429 without the key being looked up,
/// until the second is over. Keys this gateway already holds as valid still pass (<see cref="ApiKeyCache.TryGetValid"/>),
/// so a team behind the same address as a guesser keeps working. Counts are per gateway process.
/// </summary>
public sealed partial class AuthenticationFailures(TimeProvider time, ILogger<AuthenticationFailures> logger)
{
    /// <summary>Failures an address may have in one second before it is answered 429.</summary>
    public const int FailuresPerSecond = 20;

    public static readonly TimeSpan SummaryInterval = TimeSpan.FromSeconds(60);

    /// <summary>Addresses tracked at most; past it, idle ones are dropped, so a spread of addresses cannot grow memory without bound.</summary>
    private const int MaxAddresses = 100_000;

    private readonly ConcurrentDictionary<IPAddress, Counter> _counters = new();

    private sealed class Counter
    {
        public long Second;
        public int InSecond;
        /// <summary>When the current summary interval began; -1 before the address's first failure was logged.</summary>
        public long SummaryStartedAt = -1;
        public long SinceSummary;
        public long Throttled;
    }

    /// <summary>True when the address has failed too often this second: answer 429 without looking the key up.</summary>
    public bool IsThrottled(IPAddress? address)
    {
        if (address is null || !_counters.TryGetValue(address, out var counter))
        {
            return false;
        }

        lock (counter)
        {
            if (counter.Second == CurrentSecond() && counter.InSecond >= FailuresPerSecond)
            {
                counter.Throttled++;
                return true;
            }

            return false;
        }
    }

    /// <summary>Counts one failure (an unknown, revoked or expired key, or a malformed header) and logs a summary when one is due.</summary>
    public void Record(IPAddress? address, string reason)
    {
        address ??= IPAddress.None;
        if (_counters.Count >= MaxAddresses)
        {
            Prune();
        }

        var counter = _counters.GetOrAdd(address, _ => new Counter());
        long failures;
        long throttled;
        TimeSpan elapsed;
        lock (counter)
        {
            var second = CurrentSecond();
            if (counter.Second != second)
            {
                counter.Second = second;
                counter.InSecond = 0;
            }

            counter.InSecond++;
            counter.SinceSummary++;
            // An address's first failure is logged at once (someone mistyped a key: an operator sees it now); after
            // that, at most one line per interval, counting everything since the previous line.
            elapsed = counter.SummaryStartedAt < 0 ? TimeSpan.Zero : time.GetElapsedTime(counter.SummaryStartedAt);
            if (counter.SummaryStartedAt >= 0 && elapsed < SummaryInterval)
            {
                return;
            }

            failures = counter.SinceSummary;
            throttled = counter.Throttled;
            counter.SinceSummary = 0;
            counter.Throttled = 0;
            counter.SummaryStartedAt = time.GetTimestamp();
        }

        LogFailures(logger, failures, throttled, address, Math.Round(elapsed.TotalSeconds), reason);
    }

    private long CurrentSecond() => time.GetUtcNow().ToUnixTimeSeconds();

    private void Prune()
    {
        var stale = CurrentSecond() - 1;
        foreach (var (address, counter) in _counters)
        {
            if (Volatile.Read(ref counter.Second) < stale)
            {
                _counters.TryRemove(address, out _);
            }
        }
    }

    [LoggerMessage(LogLevel.Information, "{Failures} failed authentication(s) and {Throttled} throttled request(s) from {Address} in the last {Seconds} s; latest: {Reason}")]
    private static partial void LogFailures(ILogger logger, long failures, long throttled, IPAddress address, double seconds, string reason);
}
