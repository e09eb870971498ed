using System.Text.Json;

namespace FineTunePlatform.Training.Tests;

/// <summary>
/// The scheduler's policy observed from the training database's event history (microsecond timestamps): per-project
/// concurrency quotas, creation order within a project, priority first, and turns between equal projects.
/// </summary>
public sealed class SchedulingTests
{
    [Fact]
    public async Task Twenty_jobs_from_three_projects_run_within_quotas_of_one_two_and_three_in_creation_order()
    {
        await using var platform = await TrainingPlatform.StartAsync("scheduling", workers: 2, slotsPerWorker: 3);
        var quotas = new[] { 1, 2, 3 };
        var projects = new List<(string ProjectId, string Key, string File, int Quota)>();
        foreach (var quota in quotas)
        {
            var (projectId, key) = await platform.Admin.CreateProjectAsync("member");
            await platform.Admin.SetTrainingQuotaAsync(projectId, maxConcurrentJobs: quota);
            projects.Add((projectId, key, await platform.UploadTrainingFileAsync(key), quota));
        }

        var created = new List<(string JobId, string ProjectId, string Key)>();
        for (var i = 0; i < 20; i++)
        {
            var project = projects[i % 3];
            var job = await platform.CreateJobAsync(project.Key, project.File, epochs: 3);
            created.Add((job.GetProperty("id").GetString()!, project.ProjectId, project.Key));
        }

        foreach (var (jobId, _, key) in created)
        {
            var job = await platform.WaitForJobAsync(key, jobId, TrainingPlatform.Finished, TimeSpan.FromMinutes(3));
            Assert.True(job.GetProperty("status").GetString() == "succeeded", job.ToString());
        }

        var intervals = await RunIntervalsAsync(platform);
        foreach (var project in projects)
        {
            var own = created.Where(job => job.ProjectId == project.ProjectId).Select(job => intervals[job.JobId]).ToList();
            // Never above the quota, and the quota was used: the project had more jobs queued than it may run.
            Assert.Equal(project.Quota, MaxOverlap(own));
            // Within a project, jobs start in the order they were created.
            Assert.Equal(own.Select(interval => interval.Start).Order(), own.Select(interval => interval.Start));
        }

        Assert.True(MaxOverlap([.. intervals.Values]) <= 6, "more jobs ran at once than the workers have slots");
    }

    [Fact]
    public async Task Priority_goes_first_then_equal_projects_take_turns_and_waiting_jobs_say_why()
    {
        // No worker yet: everything queues, then one slot serves the queue in policy order.
        await using var platform = await TrainingPlatform.StartAsync("priority", workers: 0);
        var (lowA, lowAKey) = await platform.Admin.CreateProjectAsync("member");
        var (lowB, lowBKey) = await platform.Admin.CreateProjectAsync("member");
        var (high, highKey) = await platform.Admin.CreateProjectAsync("member");
        await platform.Admin.SetTrainingQuotaAsync(high, priority: 10);
        var order = new List<(string JobId, string Project)>();
        async Task CreateAsync(string key, string project, int count)
        {
            var file = await platform.UploadTrainingFileAsync(key);
            for (var i = 0; i < count; i++)
            {
                order.Add(((await platform.CreateJobAsync(key, file, epochs: 1)).GetProperty("id").GetString()!, project));
            }
        }

        await CreateAsync(lowAKey, lowA, 3);
        await CreateAsync(lowBKey, lowB, 2);
        await CreateAsync(highKey, high, 2);
        var firstJob = order[0].JobId;
        using (var http = platform.Http(lowAKey))
        {
            var waited = await WaitForEventAsync(http, firstJob, "Waiting: no trainer worker is running");
            Assert.True(waited);
        }

        platform.AddWorker(slots: 1);
        foreach (var (jobId, project) in order)
        {
            var key = project == lowA ? lowAKey : project == lowB ? lowBKey : highKey;
            await platform.WaitForJobAsync(key, jobId, TrainingPlatform.Finished, TimeSpan.FromMinutes(2));
        }

        var intervals = await RunIntervalsAsync(platform);
        var started = order.OrderBy(job => intervals[job.JobId].Start).Select(job => job.Project).ToList();
        Assert.Equal([high, high, lowA, lowB, lowA, lowB, lowA], started);
    }

    private static async Task<bool> WaitForEventAsync(HttpClient http, string jobId, string prefix)
    {
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (DateTime.UtcNow < deadline)
        {
            var events = JsonDocument.Parse(await http.GetStringAsync($"/v1/fine_tuning/jobs/{jobId}/events")).RootElement.GetProperty("data");
            if (events.EnumerateArray().Any(item => item.GetProperty("message").GetString()!.StartsWith(prefix, StringComparison.Ordinal)))
            {
                return true;
            }

            await Task.Delay(100);
        }

        return false;
    }

    /// <summary>Each job's time holding a slot: from its dispatch to its completion.</summary>
    private static async Task<Dictionary<string, (DateTime Start, DateTime End)>> RunIntervalsAsync(TrainingPlatform platform)
    {
        var rows = await platform.QueryTrainingAsync(
            """SELECT "JobId", "Message", "CreatedAt" FROM job_events WHERE "Message" IN ('Fine-tuning job started', 'The job has successfully completed')""",
            reader => (JobId: reader.GetString(0), Message: reader.GetString(1), At: reader.GetDateTime(2)));
        return rows.GroupBy(row => row.JobId).ToDictionary(
            group => group.Key,
            group => (group.Single(row => row.Message == "Fine-tuning job started").At, group.Single(row => row.Message != "Fine-tuning job started").At));
    }

    private static int MaxOverlap(IReadOnlyCollection<(DateTime Start, DateTime End)> intervals)
    {
        // Ends sort before starts at the same instant: a slot freed and reused at once is not an overlap.
        var points = intervals.SelectMany(interval => new[] { (At: interval.Start, Delta: 1), (At: interval.End, Delta: -1) })
            .OrderBy(point => point.At).ThenBy(point => point.Delta);
        int current = 0, max = 0;
        foreach (var (_, delta) in points)
        {
            current += delta;
            max = Math.Max(max, current);
        }

        return max;
    }
}
