using System.Globalization;
using System.Text;
using System.Text.Json;
using FineTunePlatform.Cli.Commands;

namespace FineTunePlatform.Cli.Output;

/// <summary>
/// What `ftune jobs watch` knows of a job from its event stream (OpenAI's fine_tuning.job.event objects): the last
/// step and its losses, every training loss so far (for the sparkline), when steps happened (for the ETA) and the
/// latest events that are not metrics.
/// </summary>
public sealed class JobProgress(string jobId)
{
    private const int EventsShown = 5;

    private readonly Queue<string> _events = new();
    private readonly List<double> _trainLosses = [];
    private (int Step, long At)? _firstMetrics;
    private long _lastMetricsAt;

    public string JobId { get; } = jobId;

    public string Status { get; set; } = "-";

    public string Model { get; set; } = "-";

    public int Step { get; private set; }

    public int TotalSteps { get; private set; }

    public double? TrainLoss { get; private set; }

    public double? ValidLoss { get; private set; }

    public IReadOnlyList<double> TrainLosses => _trainLosses;

    public IEnumerable<string> LatestEvents => _events;

    public void Update(JsonElement job)
    {
        Status = Table.Text(job, "status");
        Model = Table.Text(job, "model");
    }

    /// <summary>Takes in one event; true when it was a metrics event (a step), false for anything else.</summary>
    public bool Apply(JsonElement jobEvent)
    {
        var at = jobEvent.TryGetProperty("created_at", out var created) && created.ValueKind == JsonValueKind.Number ? created.GetInt64() : 0;
        if (Table.Text(jobEvent, "type") == "metrics" && jobEvent.TryGetProperty("data", out var data) && data.ValueKind == JsonValueKind.Object)
        {
            Step = Number(data, "step") is { } step ? (int)step : Step;
            TotalSteps = Number(data, "total_steps") is { } total ? (int)total : TotalSteps;
            TrainLoss = Number(data, "train_loss") ?? TrainLoss;
            ValidLoss = Number(data, "valid_loss") ?? ValidLoss;
            if (Number(data, "train_loss") is { } loss)
            {
                _trainLosses.Add(loss);
            }

            _firstMetrics ??= (Step, at);
            _lastMetricsAt = at;
            Status = "running";
            return true;
        }

        _events.Enqueue(EventLine(jobEvent));
        if (_events.Count > EventsShown)
        {
            _events.Dequeue();
        }

        return false;
    }

    /// <summary>The time left at the pace of the steps so far (event times are whole seconds: null until a pace shows).</summary>
    public TimeSpan? Remaining
    {
        get
        {
            if (_firstMetrics is not { } first || Step <= first.Step || TotalSteps <= Step || _lastMetricsAt <= first.At)
            {
                return null;
            }

            var secondsPerStep = (_lastMetricsAt - first.At) / (double)(Step - first.Step);
            return TimeSpan.FromSeconds(Math.Round(secondsPerStep * (TotalSteps - Step)));
        }
    }

    /// <summary>An event as the plain watch prints it: local time, level, message.</summary>
    public static string EventLine(JsonElement jobEvent)
    {
        var at = DateTimeOffset.FromUnixTimeSeconds(jobEvent.GetProperty("created_at").GetInt64()).ToLocalTime().ToString("HH:mm:ss", CultureInfo.InvariantCulture);
        return $"{at}  {jobEvent.GetProperty("level").GetString(),-5}  {jobEvent.GetProperty("message").GetString()}";
    }

    private static double? Number(JsonElement data, string name) =>
        data.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.Number ? value.GetDouble() : null;
}

/// <summary>The one-screen view of a job on a terminal: status, step/total, ETA, loss sparkline, the latest events.</summary>
public static class JobScreen
{
    private const int BarWidth = 24;

    public static IReadOnlyList<string> Render(JobProgress job, int width)
    {
        var lines = new List<string> { $"{job.JobId}  {job.Status}  {job.Model}" };
        if (job.TotalSteps > 0)
        {
            var fraction = Math.Clamp(job.Step / (double)job.TotalSteps, 0, 1);
            var filled = (int)Math.Round(fraction * BarWidth);
            var eta = job.Step >= job.TotalSteps ? "done" : job.Remaining is { } left ? $"ETA {Duration(left)}" : "ETA -";
            lines.Add($"step {job.Step}/{job.TotalSteps}  [{new string('█', filled)}{new string('·', BarWidth - filled)}] {fraction * 100,3:0}%  {eta}");
        }
        else
        {
            lines.Add("step -  (waiting for the first step)");
        }

        var losses = job.TrainLosses.Count == 0 ? "" : Sparkline.Render(job.TrainLosses, Math.Clamp(width - 40, 10, 60)) + "  ";
        lines.Add(string.Create(CultureInfo.InvariantCulture, $"loss {losses}train {Loss(job.TrainLoss)}  valid {Loss(job.ValidLoss)}"));
        lines.AddRange(job.LatestEvents.Select(line => "  " + line));
        return lines;
    }

    private static string Loss(double? loss) => loss is { } value ? value.ToString("0.0000", CultureInfo.InvariantCulture) : "-";

    private static string Duration(TimeSpan span) => span.TotalHours >= 1
        ? $"{(int)span.TotalHours}h{span.Minutes:00}m"
        : span.TotalMinutes >= 1 ? $"{(int)span.TotalMinutes}m{span.Seconds:00}s" : $"{span.Seconds}s";
}

/// <summary>Values as a line of unicode blocks, lowest ▁ to highest █, squeezed to a width by averaging neighbours.</summary>
public static class Sparkline
{
    private const string Blocks = "▁▂▃▄▅▆▇█";

    public static string Render(IReadOnlyList<double> values, int width)
    {
        if (values.Count == 0 || width <= 0)
        {
            return "";
        }

        // More values than columns: each column is the mean of its share of the values, oldest on the left.
        var columns = Math.Min(width, values.Count);
        var points = Enumerable.Range(0, columns).Select(column =>
        {
            var from = column * values.Count / columns;
            var to = Math.Max(from + 1, (column + 1) * values.Count / columns);
            return values.Skip(from).Take(to - from).Average();
        }).ToList();
        var (low, high) = (points.Min(), points.Max());
        var text = new StringBuilder(columns);
        foreach (var point in points)
        {
            // A flat line sits in the middle, not at the floor: it says "steady", not "zero".
            var level = high - low < 1e-12 ? Blocks.Length / 2 - 1 : (int)Math.Round((point - low) / (high - low) * (Blocks.Length - 1));
            text.Append(Blocks[level]);
        }

        return text.ToString();
    }
}

/// <summary>
/// Redraws a block of lines in place: the cursor goes back up over the previous frame, each line is rewritten and
/// cleared to its end, and whatever a taller frame left below is cleared. Lines are cut to the terminal's width, since
/// a wrapped line would throw off the count of lines to go back over.
/// </summary>
public sealed class LiveScreen(TextWriter terminal, Func<int> width)
{
    private int _drawn;

    public void Draw(IReadOnlyList<string> lines)
    {
        var columns = Math.Max(10, width());
        var frame = new StringBuilder();
        if (_drawn > 0)
        {
            frame.Append(CultureInfo.InvariantCulture, $"\u001b[{_drawn}A");
        }

        foreach (var line in lines)
        {
            frame.Append('\r').Append(line.Length >= columns ? line[..(columns - 2)] + "…" : line).Append("\u001b[K\n");
        }

        frame.Append("\u001b[J");
        _drawn = lines.Count;
        terminal.Write(frame.ToString());
        terminal.Flush();
    }
}

/// <summary>
/// Which steps the plain (not a terminal) watch prints: the first, then one each time another tenth of the steps is
/// done, and the last, so that a log shows the loss falling without a line per optimizer step.
/// </summary>
public sealed class MetricsSummary
{
    private int _printedTenth = -1;

    public bool ShouldPrint(int step, int totalSteps)
    {
        if (totalSteps <= 0 || step >= totalSteps)
        {
            return true;
        }

        var tenth = (int)(step * 10L / totalSteps);
        if (tenth <= _printedTenth)
        {
            return false;
        }

        _printedTenth = tenth;
        return true;
    }
}
