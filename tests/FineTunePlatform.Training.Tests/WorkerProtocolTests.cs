using System.Text.Json;
using FineTunePlatform.Contracts.Training;
using Grpc.Core;

namespace FineTunePlatform.Training.Tests;

/// <summary>
/// The trainer protocol as a worker speaks it over real gRPC, with this test as the only worker: what the training
/// service does with calls a real worker makes after a network fault.
/// </summary>
public sealed class WorkerProtocolTests : IAsyncLifetime
{
    private TrainingPlatform _platform = null!;

    public async Task InitializeAsync() => _platform = await TrainingPlatform.StartAsync("workerprotocol", workers: 0);

    public async Task DisposeAsync() => await _platform.DisposeAsync();

    [Fact]
    public async Task A_batch_of_events_sent_again_after_a_timeout_is_recorded_once()
    {
        var (_, key) = await _platform.Admin.CreateProjectAsync("owner");
        var file = await _platform.UploadTrainingFileAsync(key);
        var jobId = (await _platform.CreateJobAsync(key, file, epochs: 1)).GetProperty("id").GetString()!;
        var trainer = new TrainerService.TrainerServiceClient(_platform.Training.CreateGrpcChannel());
        var internalOnly = new Metadata { { "x-ft-internal-token", _platform.Environment.InternalToken } };

        // This test announces a slot; the scheduler dispatches the job to "a worker" and this test claims it.
        const string workerId = "protocol-test-worker";
        await trainer.RegisterWorkerAsync(new WorkerPresence { WorkerId = workerId, Slots = 1 }, internalOnly);
        await _platform.WaitForJobAsync(key, jobId, job => job.GetProperty("status").GetString() == "running");
        var attempt = (await _platform.QueryTrainingAsync($"SELECT \"Attempt\" FROM jobs WHERE \"Id\" = '{jobId}'", row => row.GetInt32(0))).Single();
        var claim = await trainer.ClaimJobAsync(new ClaimJobRequest { JobId = jobId, Attempt = attempt, WorkerId = workerId }, internalOnly);
        Assert.True(claim.Granted, claim.Reason);

        var batch = new ReportEventsRequest { JobId = jobId, Attempt = attempt, WorkerId = workerId };
        batch.Events.Add(new WorkerEvent { Id = "ft-event-protocol-note-1", Level = "info", Type = "message", Message = "a note from the worker" });
        batch.Events.Add(new WorkerEvent
        {
            Id = "ft-event-protocol-step-1", Level = "info", Type = "metrics", Message = "Step 1/5: training loss=2.0000",
            DataJson = JsonSerializer.Serialize(new { step = 1, train_loss = 2.0, total_steps = 5 }),
        });
        await trainer.ReportEventsAsync(batch, internalOnly);
        // The first call's answer was lost: the worker sends the same batch again.
        await trainer.ReportEventsAsync(batch, internalOnly);

        using var http = _platform.Http(key);
        using var events = JsonDocument.Parse(await http.GetStringAsync($"/v1/fine_tuning/jobs/{jobId}/events?limit=100"));
        var messages = events.RootElement.GetProperty("data").EnumerateArray().Select(item => item.GetProperty("message").GetString()).ToList();
        Assert.Single(messages, message => message == "a note from the worker");
        Assert.Single(messages, message => message == "Step 1/5: training loss=2.0000");
        Assert.Contains("ft-event-protocol-note-1", events.RootElement.GetProperty("data").EnumerateArray().Select(item => item.GetProperty("id").GetString()));
    }
}
