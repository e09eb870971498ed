namespace FineTunePlatform.Training.Jobs;

/// <summary>
/// Which of a job's events a live stream sends next, so that it sends each exactly once and skips none. Sequence
/// numbers are taken when a row is inserted, but transactions commit in any order: one that took 11 can commit after
/// one that took 12, so "everything after the last sequence sent" would pass over 11 for good. The feed reads above a
/// floor that trails what it sent by a settle time, and leaves out what it sent: a transaction that took a number
/// below one sent at time T has committed (or never will) by T + settle time, after which the floor may pass it.
/// Events therefore reach a stream in the order they became visible, which is sequence order but for such races.
/// </summary>
public sealed class JobEventFeed(long after, TimeSpan settleTime, TimeProvider time)
{
    /// <summary>Longer than any transaction that writes job events takes between its insert and its commit.</summary>
    public static readonly TimeSpan DefaultSettleTime = TimeSpan.FromSeconds(30);

    private readonly Dictionary<long, DateTimeOffset> _sent = [];

    /// <summary>Every event at or below it has been sent, or was before the stream's start.</summary>
    public long Floor { get; private set; } = after;

    /// <summary>Events above the floor already sent: a read leaves them out.</summary>
    public IReadOnlyCollection<long> SentAboveFloor => _sent.Keys;

    public void MarkSent(long sequence)
    {
        if (sequence > Floor)
        {
            _sent.TryAdd(sequence, time.GetUtcNow());
        }
    }

    /// <summary>Raises the floor to the highest sequence sent at least the settle time ago.</summary>
    public void Settle()
    {
        var settledBefore = time.GetUtcNow() - settleTime;
        var settled = _sent.Where(sent => sent.Value <= settledBefore).Select(sent => sent.Key).DefaultIfEmpty(Floor).Max();
        if (settled <= Floor)
        {
            return;
        }

        Floor = settled;
        foreach (var sequence in _sent.Keys.Where(sequence => sequence <= settled).ToList())
        {
            _sent.Remove(sequence);
        }
    }
}
