using System.Text.Json;
using FineTunePlatform.ServiceDefaults;
using FineTunePlatform.Training.Infrastructure;

namespace FineTunePlatform.Training.Jobs;

/// <summary>
/// The one way a job's history is written. Events are rows in the same transaction as the change they describe;
/// a trigger (see the AddJobs migration) NOTIFYs `job_events` on commit, which wakes every watcher on any replica.
/// </summary>
public sealed class JobEventLog(TimeProvider time)
{
    public const string NotificationChannel = "job_events";

    public JobEvent Add(TrainingDbContext db, string jobId, string message, string level = EventLevel.Info, string type = "message", object? data = null)
    {
        var jobEvent = new JobEvent
        {
            Id = RandomIds.WithPrefix("ft-event-"),
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
