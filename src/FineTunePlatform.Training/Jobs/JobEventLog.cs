using System.Text.Json;
using FineTunePlatform.ServiceDefaults;
using FineTunePlatform.Training.Infrastructure;
using Microsoft.EntityFrameworkCore;

namespace FineTunePlatform.Training.Jobs;

/// <summary>
/// The one way a job's history is written. Events are rows in the same transaction as the change they describe;
/// a trigger (see the AddJobs migration) NOTIFYs `job_events` on commit, which wakes every watcher on any replica.
/// A job's metrics are one event per step: an attempt that resumes from a checkpoint reports again the steps the
/// lost attempt had reported after it, and the newer report replaces the older (<see cref="ReplaceStepsAsync"/>).
/// </summary>
public sealed class JobEventLog(TimeProvider time)
{
    public const string NotificationChannel = "job_events";

    public const string MetricsType = "metrics";

    /// <summary>The training step a metrics event reports (its `data.step`); null for any other event.</summary>
    public static int? MetricsStep(string type, string? dataJson)
    {
        if (type != MetricsType || string.IsNullOrEmpty(dataJson))
        {
            return null;
        }

        try
        {
            using var data = JsonDocument.Parse(dataJson);
            return data.RootElement.ValueKind == JsonValueKind.Object
                && data.RootElement.TryGetProperty("step", out var step) && step.ValueKind == JsonValueKind.Number && step.TryGetInt32(out var value) ? value : null;
        }
        catch (JsonException)
        {
            return null;
        }
    }

    /// <summary>
    /// Deletes the job's earlier metrics events of these steps, inside the caller's transaction, before the caller
    /// adds the new ones: only the job's current attempt may report (its lease), so the newest report of a step is
    /// the attempt that counts, and the job's events list each step once.
    /// </summary>
    public static async Task ReplaceStepsAsync(TrainingDbContext db, string jobId, IReadOnlyCollection<int> steps, CancellationToken cancellationToken)
    {
        if (steps.Count == 0)
        {
            return;
        }

        // Compared as text: a step written in another JSON form simply does not match (no cast can fail).
        var stepTexts = steps.Select(step => step.ToString(System.Globalization.CultureInfo.InvariantCulture)).ToArray();
        await db.Database.ExecuteSqlInterpolatedAsync($"""
            DELETE FROM job_events WHERE "JobId" = {jobId} AND "Type" = {MetricsType} AND "Data"->>'step' = ANY({stepTexts})
            """, cancellationToken);
    }

    public JobEvent Add(TrainingDbContext db, string jobId, string message, string level = EventLevel.Info, string type = "message", object? data = null, string? id = null)
    {
        var jobEvent = new JobEvent
        {
            Id = id ?? RandomIds.WithPrefix("ft-event-"),
            JobId = jobId,
            CreatedAt = time.GetUtcNow(),
            Level = level,
            Message = message,
            Type = type,
            Data = data is null ? "{}" : data as string ?? JsonSerializer.Serialize(data),
        };
        db.Events.Add(jobEvent);
        return jobEvent;
    }
}
