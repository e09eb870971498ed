using System.Collections.Concurrent;
using System.Diagnostics.Metrics;

namespace Microsoft.Extensions.Hosting;

/// <summary>
/// The platform's own metrics, on the "FineTunePlatform" meter every service exports (the Aspire dashboard charts
/// them; any OTLP backend can). Names follow OpenTelemetry's conventions: dotted, lower case, unit in the unit field.
/// Tags stay low-cardinality: project and model ids (a platform has tens of projects), never job or request ids.
/// </summary>
public static class PlatformMetrics
{
    private static readonly ConcurrentDictionary<(string Project, string Status), int> JobCounts = new();
    private static DateTimeOffset _jobCountsAt = DateTimeOffset.MinValue;

    /// <summary>Seconds from a job's creation to its first start on a worker (Training's scheduler).</summary>
    public static readonly Histogram<double> JobQueueWait = Telemetry.Meter.CreateHistogram<double>(
        "finetuneplatform.jobs.queue_wait", "s", "Time a fine-tuning job waited between its creation and its first start on a worker");

    /// <summary>Trained tokens per second of wall-clock training, per finished job (Training, when a worker completes one).</summary>
    public static readonly Histogram<double> TrainingTokensPerSecond = Telemetry.Meter.CreateHistogram<double>(
        "finetuneplatform.training.tokens_per_second", "{token}/s", "Training throughput of each succeeded attempt");

    /// <summary>Output items graded by eval runs (Evaluation), tagged with their result.</summary>
    public static readonly Counter<long> EvalItemsGraded = Telemetry.Meter.CreateCounter<long>(
        "finetuneplatform.eval.items_graded", "{item}", "Eval output items graded");

    /// <summary>Tokens of chat completions served (Gateway), prompt and completion.</summary>
    public static readonly Counter<long> ChatTokens = Telemetry.Meter.CreateCounter<long>(
        "finetuneplatform.chat.tokens", "{token}", "Tokens of chat completions served");

    /// <summary>Completions asked to be stored (`store: true`) that could not be (Gateway), tagged with why.</summary>
    public static readonly Counter<long> StoredCompletionsDropped = Telemetry.Meter.CreateCounter<long>(
        "finetuneplatform.stored_completions.dropped", "{completion}", "Chat completions that could not be stored");

    /// <summary>Requests refused with 429 by a project's or key's rate limit (Gateway).</summary>
    public static readonly Counter<long> RateLimitRejections = Telemetry.Meter.CreateCounter<long>(
        "finetuneplatform.rate_limit.rejections", "{request}", "Requests refused by a rate limit");

#pragma warning disable CA1810 // The gauge is registered once, here; nothing stores it.
    static PlatformMetrics() => _ = Telemetry.Meter.CreateObservableGauge(
        "finetuneplatform.jobs", ObserveJobs, "{job}", "Fine-tuning jobs queued and running, per project");
#pragma warning restore CA1810

    /// <summary>
    /// The scheduler's latest count of queued and running jobs per project. Only the training replica that holds the
    /// scheduling lock counts; a count older than a few passes is not reported, so a replica that stopped scheduling
    /// does not repeat stale numbers.
    /// </summary>
    public static void SetJobCounts(IEnumerable<(string Project, string Status, int Count)> counts, DateTimeOffset at)
    {
        JobCounts.Clear();
        foreach (var (project, status, count) in counts)
        {
            JobCounts[(project, status)] = count;
        }

        _jobCountsAt = at;
    }

    private static IEnumerable<Measurement<int>> ObserveJobs()
    {
        if (DateTimeOffset.UtcNow - _jobCountsAt > TimeSpan.FromSeconds(30))
        {
            return [];
        }

        return JobCounts.Select(pair => new Measurement<int>(pair.Value,
            new KeyValuePair<string, object?>("project", pair.Key.Project), new KeyValuePair<string, object?>("status", pair.Key.Status)));
    }
}
