using FineTunePlatform.Training.Jobs;
using Microsoft.Extensions.Time.Testing;

namespace FineTunePlatform.Training.Tests;

/// <summary>
/// The live stream's rule for events whose transactions commit out of sequence order (the platform-level proof with
/// concurrent writers is in <see cref="FineTuningJobsTests"/>).
/// </summary>
public sealed class JobEventFeedTests
{
    private static readonly TimeSpan Settle = TimeSpan.FromSeconds(30);

    [Fact]
    public void The_floor_stays_below_what_was_sent_until_the_settle_time_has_passed()
    {
        var clock = new FakeTimeProvider();
        var feed = new JobEventFeed(after: 10, Settle, clock);
        feed.MarkSent(12);
        feed.Settle();
        // 11 may still commit: reads must include it, and leave 12 out.
        Assert.Equal(10, feed.Floor);
        Assert.Equal([12L], feed.SentAboveFloor);

        clock.Advance(Settle - TimeSpan.FromMilliseconds(1));
        feed.Settle();
        Assert.Equal(10, feed.Floor);

        feed.MarkSent(11);
        clock.Advance(TimeSpan.FromMilliseconds(1));
        feed.Settle();
        // 12 was sent a settle time ago: everything below it is committed; 11 (just sent) is below it too.
        Assert.Equal(12, feed.Floor);
        Assert.Empty(feed.SentAboveFloor);
    }

    [Fact]
    public void Events_at_or_below_the_floor_are_never_tracked_again()
    {
        var clock = new FakeTimeProvider();
        var feed = new JobEventFeed(after: 5, Settle, clock);
        feed.MarkSent(4);
        feed.MarkSent(5);
        Assert.Empty(feed.SentAboveFloor);
        feed.MarkSent(7);
        feed.MarkSent(7);
        Assert.Equal([7L], feed.SentAboveFloor);
        clock.Advance(Settle);
        feed.MarkSent(9);
        feed.Settle();
        Assert.Equal(7, feed.Floor);
        Assert.Equal([9L], feed.SentAboveFloor);
    }
}
