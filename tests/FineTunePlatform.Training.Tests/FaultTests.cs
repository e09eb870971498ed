using System.Text.Json;
using FineTunePlatform.Contracts.IntegrationEvents;
using FineTunePlatform.Testing;
using MassTransit;
using Microsoft.Extensions.DependencyInjection;

namespace FineTunePlatform.Training.Tests;

/// <summary>
/// A job is never lost and never trained twice to completion: a worker killed with SIGKILL, the training service
/// restarted mid-job, and TrainJob delivered twice.
/// </summary>
public sealed class FaultTests
{
    /// <summary>How long a 20-epoch job may take to finish after a fault: a bound for a stuck job, not a speed target
    /// (on two cores shared with the rest of the suite these jobs take one to three minutes).</summary>
    private static readonly TimeSpan FaultJobTimeout = TimeSpan.FromMinutes(5);

    [Fact]
    public async Task A_worker_killed_mid_training_leaves_a_job_that_resumes_from_its_checkpoint_and_succeeds_once()
    {
        await using var platform = await TrainingPlatform.StartAsync("killworker", workers: 0);
        var (_, key) = await platform.Admin.CreateProjectAsync("member");
        var file = await platform.UploadTrainingFileAsync(key);
        using var doomed = await ServiceProcess.StartAsync("FineTunePlatform.Training.Worker", platform.WorkerSettings(slots: 1), TimeSpan.FromSeconds(60));

        var jobId = (await platform.CreateJobAsync(key, file, epochs: 40)).GetProperty("id").GetString()!;
        await WaitAsync(async () => (await CheckpointStepsAsync(platform, jobId)).Count > 0);
        doomed.Kill(entireProcessTree: true); // SIGKILL: no goodbye, no report, the lease just stops being renewed.
        var savedBeforeKill = (await CheckpointStepsAsync(platform, jobId)).Max();

        platform.AddWorker(slots: 1);
        var job = await platform.WaitForJobAsync(key, jobId, TrainingPlatform.Finished, FaultJobTimeout);

        Assert.Equal("succeeded", job.GetProperty("status").GetString());
        var messages = await MessagesAsync(platform, jobId);
        // The attempt the killed worker held (attempt 1, or a later one when a loaded machine let a claim time out first).
        var lost = messages.Single(message => message.StartsWith("Attempt ", StringComparison.Ordinal) && message.Contains(" lost: worker ", StringComparison.Ordinal));
        var lostAttempt = int.Parse(lost.Split(' ')[1], System.Globalization.CultureInfo.InvariantCulture);
        var resumedAt = messages.Single(message => message.StartsWith("Resuming from the checkpoint at step", StringComparison.Ordinal));
        Assert.True(int.Parse(resumedAt.Split(' ')[6], System.Globalization.CultureInfo.InvariantCulture) >= savedBeforeKill, resumedAt);
        Assert.Single(messages, message => message.StartsWith("New fine-tuned model created", StringComparison.Ordinal));
        Assert.Single(messages, message => message == "The job has successfully completed");
        Assert.Equal(lostAttempt + 1, await AttemptAsync(platform, jobId));

        // The results cover every step once, across both attempts.
        using var http = platform.Http(key);
        var csv = await http.GetStringAsync($"/v1/files/{job.GetProperty("result_files")[0].GetString()}/content");
        var steps = csv.Split('\n', StringSplitOptions.RemoveEmptyEntries).Skip(1).Select(row => int.Parse(row.Split(',')[0], System.Globalization.CultureInfo.InvariantCulture));
        Assert.Equal(Enumerable.Range(1, 400), steps);

        // The job's events hold each step's metrics once: the steps the second attempt trained again replaced the
        // first attempt's (issue 20: they were listed twice).
        var metricSteps = await platform.QueryTrainingAsync(
            $"""SELECT ("Data"->>'step')::int FROM job_events WHERE "JobId" = '{jobId}' AND "Type" = 'metrics' ORDER BY 1""", reader => reader.GetInt32(0));
        Assert.Equal(Enumerable.Range(1, 400), metricSteps);
        var listed = new List<int>();
        var fineTuningJob = await platform.FineTuning(key).GetJobAsync(jobId);
        await foreach (var item in fineTuningJob.GetEventsAsync(new OpenAI.FineTuning.GetEventsOptions { PageSize = 100 }))
        {
            if (item.Message.StartsWith("Step ", StringComparison.Ordinal))
            {
                listed.Add(int.Parse(item.Message["Step ".Length..item.Message.IndexOf('/', StringComparison.Ordinal)], System.Globalization.CultureInfo.InvariantCulture));
            }
        }

        Assert.Equal(Enumerable.Range(1, 400), listed.Order());
    }

    [Fact]
    public async Task A_training_service_restart_mid_job_does_not_lose_the_job()
    {
        await using var platform = await TrainingPlatform.StartAsync("restarttraining", workers: 1);
        var (_, key) = await platform.Admin.CreateProjectAsync("member");
        var file = await platform.UploadTrainingFileAsync(key);
        var jobId = (await platform.CreateJobAsync(key, file, epochs: 40)).GetProperty("id").GetString()!;
        await WaitAsync(async () => (await CheckpointStepsAsync(platform, jobId)).Count > 0);

        await platform.RestartTrainingAsync();

        var job = await platform.WaitForJobAsync(key, jobId, TrainingPlatform.Finished, FaultJobTimeout);
        Assert.Equal("succeeded", job.GetProperty("status").GetString());
        var messages = await MessagesAsync(platform, jobId);
        Assert.Single(messages, message => message.StartsWith("New fine-tuned model created", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_duplicate_train_job_delivery_trains_nothing()
    {
        await using var platform = await TrainingPlatform.StartAsync("duplicates", workers: 2);
        var (_, key) = await platform.Admin.CreateProjectAsync("member");
        var file = await platform.UploadTrainingFileAsync(key);
        var jobId = (await platform.CreateJobAsync(key, file, epochs: 20)).GetProperty("id").GetString()!;
        await platform.WaitForJobAsync(key, jobId, job => job.GetProperty("status").GetString() == "running");
        await WaitAsync(async () => (await MessagesAsync(platform, jobId)).Any(message => message.StartsWith("Worker ", StringComparison.Ordinal)));

        // The same attempt again while it trains (the idle worker takes it), and again after it finished.
        var bus = platform.Training.Services.GetRequiredService<IBus>();
        var queue = await bus.GetSendEndpoint(new Uri("queue:train-job"));
        await queue.Send(new TrainJob(jobId, 1));
        var job = await platform.WaitForJobAsync(key, jobId, TrainingPlatform.Finished, FaultJobTimeout);
        await queue.Send(new TrainJob(jobId, 1));
        await Task.Delay(TimeSpan.FromSeconds(2));

        Assert.Equal("succeeded", job.GetProperty("status").GetString());
        var messages = await MessagesAsync(platform, jobId);
        // Each attempt was claimed by exactly one worker (a starved machine may legitimately lose a lease and add an
        // attempt; a duplicate delivery never adds a claim), and exactly one attempt finished.
        var attempts = await AttemptAsync(platform, jobId);
        for (var attempt = 1; attempt <= attempts; attempt++)
        {
            Assert.Single(messages, message => message.StartsWith("Worker ", StringComparison.Ordinal) && message.Contains($" is training attempt {attempt}", StringComparison.Ordinal));
        }

        Assert.Equal(attempts, messages.Count(message => message.StartsWith("Worker ", StringComparison.Ordinal)));
        Assert.Single(messages, message => message.StartsWith("New fine-tuned model created", StringComparison.Ordinal));
        Assert.Equal(job.GetProperty("fine_tuned_model").GetString(), (await platform.GetJobAsync(key, jobId)).GetProperty("fine_tuned_model").GetString());
    }

    private static Task<List<int>> CheckpointStepsAsync(TrainingPlatform platform, string jobId) =>
        platform.QueryTrainingAsync($"SELECT \"Step\" FROM checkpoints WHERE \"JobId\" = '{jobId}'", reader => reader.GetInt32(0));

    private static async Task<int> AttemptAsync(TrainingPlatform platform, string jobId) =>
        (await platform.QueryTrainingAsync($"SELECT \"Attempt\" FROM jobs WHERE \"Id\" = '{jobId}'", reader => reader.GetInt32(0))).Single();

    private static Task<List<string>> MessagesAsync(TrainingPlatform platform, string jobId) =>
        platform.QueryTrainingAsync($"SELECT \"Message\" FROM job_events WHERE \"JobId\" = '{jobId}' ORDER BY \"Sequence\"", reader => reader.GetString(0));

    private static async Task WaitAsync(Func<Task<bool>> condition)
    {
        var deadline = DateTime.UtcNow.AddSeconds(90);
        while (!await condition())
        {
            Assert.True(DateTime.UtcNow < deadline, "Timed out waiting for a condition.");
            await Task.Delay(50);
        }
    }
}
