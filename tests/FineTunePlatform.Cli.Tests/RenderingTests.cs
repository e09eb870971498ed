using System.Text.Json;
using FineTunePlatform.Cli.Output;
using Microsoft.Extensions.Time.Testing;

namespace FineTunePlatform.Cli.Tests;

/// <summary>What `ftune jobs watch` and the upload bar draw, from known inputs.</summary>
public sealed class RenderingTests
{
    [Fact]
    public void A_sparkline_maps_the_lowest_value_to_the_lowest_block_and_the_highest_to_the_highest()
    {
        Assert.Equal("█▆▃▁", Sparkline.Render([4.0, 3.0, 2.0, 1.0], width: 10));
        Assert.Equal("▁█", Sparkline.Render([0.5, 2.5], width: 10));
    }

    [Fact]
    public void A_sparkline_squeezes_many_values_into_its_width_by_averaging_neighbours()
    {
        // 8 values into 4 columns: the means are 10, 8, 6, 2.
        var line = Sparkline.Render([11.0, 9.0, 9.0, 7.0, 7.0, 5.0, 3.0, 1.0], width: 4);
        Assert.Equal(4, line.Length);
        Assert.Equal("█▆▅▁", line);
        Assert.Equal(60, Sparkline.Render(Enumerable.Range(0, 1000).Select(i => 1000.0 - i).ToList(), width: 60).Length);
    }

    [Fact]
    public void A_flat_sparkline_is_steady_in_the_middle_and_no_values_draw_nothing()
    {
        Assert.Equal("▄▄▄", Sparkline.Render([2.0, 2.0, 2.0], width: 10));
        Assert.Equal("", Sparkline.Render([], width: 10));
    }

    [Fact]
    public void The_plain_watch_prints_the_first_step_each_tenth_and_the_last()
    {
        var summary = new MetricsSummary();
        var printed = Enumerable.Range(1, 200).Where(step => summary.ShouldPrint(step, 200)).ToList();
        Assert.Equal([1, 20, 40, 60, 80, 100, 120, 140, 160, 180, 200], printed);

        // Fewer steps than tenths: every step is news.
        var few = new MetricsSummary();
        Assert.Equal([1, 2, 3, 4], Enumerable.Range(1, 4).Where(step => few.ShouldPrint(step, 4)).ToList());
    }

    [Fact]
    public void The_live_view_shows_status_steps_eta_losses_and_the_latest_events()
    {
        var progress = new JobProgress("ftjob-1");
        progress.Update(Json("""{"id":"ftjob-1","status":"queued","model":"local-nano"}"""));
        Assert.False(progress.Apply(Event(1000, "Job enqueued")));
        for (var step = 1; step <= 10; step++)
        {
            // A step every 2 seconds: 90 more steps take 180 s.
            Assert.True(progress.Apply(Metrics(1000 + (2 * step), step, 100, trainLoss: 3.0 - (0.1 * step), validLoss: step == 10 ? 2.5 : null)));
        }

        var lines = JobScreen.Render(progress, width: 100);
        Assert.Equal("ftjob-1  running  local-nano", lines[0]);
        Assert.Matches(@"^step 10/100  \[██·+\]  10%  ETA 3m00s$", lines[1]);
        Assert.Matches(@"^loss █[█▇▆▅▄▃▂▁]{8}▁  train 2\.0000  valid 2\.5000$", lines[2]);
        Assert.Matches(@"^  \d\d:\d\d:\d\d  info   Job enqueued$", lines[3]);
        Assert.Equal(4, lines.Count);
    }

    [Fact]
    public void The_live_view_keeps_only_the_latest_five_events()
    {
        var progress = new JobProgress("ftjob-1");
        for (var i = 1; i <= 7; i++)
        {
            progress.Apply(Event(1000 + i, $"event {i}"));
        }

        var events = JobScreen.Render(progress, width: 100).Skip(3).ToList();
        Assert.Equal(5, events.Count);
        Assert.EndsWith("event 3", events[0], StringComparison.Ordinal);
        Assert.EndsWith("event 7", events[^1], StringComparison.Ordinal);
    }

    [Fact]
    public void The_live_screen_goes_back_over_its_last_frame_and_never_wraps_a_line()
    {
        var terminal = new StringWriter();
        var screen = new LiveScreen(terminal, () => 20);
        screen.Draw(["first", "second", new string('x', 50)]);
        Assert.Equal("\rfirst\u001b[K\n\rsecond\u001b[K\n\r" + new string('x', 18) + "…\u001b[K\n\u001b[J", terminal.ToString());

        terminal.GetStringBuilder().Clear();
        screen.Draw(["again"]);
        Assert.Equal("\u001b[3A\ragain\u001b[K\n\u001b[J", terminal.ToString());
    }

    [Fact]
    public void The_upload_bar_says_how_much_of_how_much_has_gone()
    {
        Assert.Equal("a.jsonl [███████████████···············]  50%  1.0 MB of 2.0 MB", ProgressBar.Render("a.jsonl", 1 << 20, 2 << 20));
        Assert.Equal("a.jsonl [██████████████████████████████] 100%  0 bytes of 0 bytes", ProgressBar.Render("a.jsonl", 0, 0));
    }

    [Fact]
    public void The_upload_bar_draws_at_once_then_at_most_ten_times_a_second_and_ends_full_on_its_own_line()
    {
        var terminal = new StringWriter();
        var clock = new FakeTimeProvider();
        var bar = new ProgressBar(terminal, "a.jsonl", 1000, clock);
        bar.Advance(100);
        Assert.StartsWith("\ra.jsonl [███·", terminal.ToString(), StringComparison.Ordinal);
        clock.Advance(TimeSpan.FromMilliseconds(50));
        bar.Advance(100);
        Assert.Single(terminal.ToString().Split('\r', StringSplitOptions.RemoveEmptyEntries));
        clock.Advance(TimeSpan.FromMilliseconds(60));
        bar.Advance(100);
        Assert.Equal(2, terminal.ToString().Split('\r', StringSplitOptions.RemoveEmptyEntries).Length);

        bar.Advance(700);
        bar.Complete();
        var frames = terminal.ToString().Split('\r', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(3, frames.Length);
        Assert.StartsWith("a.jsonl [" + new string('█', 30) + "] 100%  1000 bytes of 1000 bytes  ", frames[^1], StringComparison.Ordinal);
        Assert.EndsWith("\u001b[K" + Environment.NewLine, frames[^1], StringComparison.Ordinal);
    }

    private static JsonElement Json(string text) => JsonDocument.Parse(text).RootElement;

    private static JsonElement Event(long at, string message) =>
        Json(JsonSerializer.Serialize(new { @object = "fine_tuning.job.event", created_at = at, level = "info", message, type = "message" }));

    private static JsonElement Metrics(long at, int step, int totalSteps, double trainLoss, double? validLoss) => Json(JsonSerializer.Serialize(new
    {
        @object = "fine_tuning.job.event",
        created_at = at,
        level = "info",
        message = $"Step {step}/{totalSteps}",
        type = "metrics",
        data = new { step, train_loss = trainLoss, valid_loss = validLoss, total_steps = totalSteps },
    }));
}
