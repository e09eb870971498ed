using System.Text.Json;
using FineTunePlatform.Contracts.IntegrationEvents;

namespace FineTunePlatform.Training.Tests;

/// <summary>
/// Issue 18 item 6: the training service writes TrainingJobFinished in the transaction that finishes the job, and a
/// relay sends it; a message committed by a process that died before sending it is sent by the relay (of any
/// replica) later, so a job's training usage is never lost with a process.
/// </summary>
public sealed class OutboxTests(FineTuningFixture fixture) : IClassFixture<FineTuningFixture>
{
    private TrainingPlatform Platform => fixture.Platform;

    [Fact]
    public async Task A_finished_jobs_event_committed_but_never_sent_is_sent_later_and_its_usage_recorded()
    {
        var (projectId, key) = await Platform.Admin.CreateProjectAsync("owner");
        var file = await Platform.UploadTrainingFileAsync(key);
        var jobId = (await Platform.CreateJobAsync(key, file, epochs: 1)).GetProperty("id").GetString()!;
        var job = await Platform.WaitForJobAsync(key, jobId, TrainingPlatform.Finished);
        Assert.Equal("succeeded", job.GetProperty("status").GetString());
        var trainedTokens = job.GetProperty("trained_tokens").GetInt64();
        Assert.Equal(trainedTokens, await TrainingUsageAsync(key, jobId, present: true));
        // The relay drained the outbox.
        Assert.Equal(0L, await OutboxCountAfterDrainAsync(jobId));

        // Play the loss: the usage the message produced is gone, and the message sits committed in the outbox, as when
        // the process that finished the job died right after its commit.
        await TrainingPlatform.QueryAsync(Platform.GatewayDatabase, $"DELETE FROM usage_daily WHERE \"KeyId\" = '{jobId}' RETURNING 1", row => row.GetInt32(0));
        Assert.Null(await TrainingUsageAsync(key, jobId, present: false));
        var finished = new TrainingJobFinished(jobId, projectId, "succeeded", job.GetProperty("fine_tuned_model").GetString(), "local-nano") { TrainedTokens = trainedTokens };
        await Platform.QueryTrainingAsync(
            $"INSERT INTO outbox_messages (\"Type\", \"Body\", \"CreatedAt\") VALUES ('{typeof(TrainingJobFinished).FullName}', '{JsonSerializer.Serialize(finished)}'::jsonb, now()) RETURNING 1",
            row => row.GetInt32(0));

        Assert.Equal(trainedTokens, await TrainingUsageAsync(key, jobId, present: true));
        Assert.Equal(0L, await OutboxCountAfterDrainAsync(jobId));
    }

    /// <summary>
    /// The job's outbox rows once the relay has had up to 30 s to delete them: it deletes a row after the broker
    /// confirmed its publish, so the consumer may record the usage before that delete commits (read at once, this
    /// failed CI once).
    /// </summary>
    private async Task<long> OutboxCountAfterDrainAsync(string jobId)
    {
        var deadline = DateTime.UtcNow.AddSeconds(30);
        long count;
        while ((count = await OutboxCountAsync(jobId)) > 0 && DateTime.UtcNow < deadline)
        {
            await Task.Delay(100);
        }

        return count;
    }

    private Task<long> OutboxCountAsync(string jobId) =>
        Platform.QueryTrainingAsync($"SELECT count(*) FROM outbox_messages WHERE \"Body\"->>'JobId' = '{jobId}'", row => row.GetInt64(0)).ContinueWith(rows => rows.Result.Single());

    /// <summary>The job's training tokens in the project's usage, once it is (or is not) there, within 30 s.</summary>
    private async Task<long?> TrainingUsageAsync(string key, string jobId, bool present)
    {
        using var http = Platform.Http(key);
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (true)
        {
            var row = JsonDocument.Parse(await http.GetStringAsync("/v1/usage")).RootElement.GetProperty("data").EnumerateArray()
                .Where(usage => usage.GetProperty("api_key_id").GetString() == jobId).Cast<JsonElement?>().FirstOrDefault();
            if ((row is not null) == present || DateTime.UtcNow > deadline)
            {
                return row?.GetProperty("training_tokens").GetInt64();
            }

            await Task.Delay(100);
        }
    }
}
