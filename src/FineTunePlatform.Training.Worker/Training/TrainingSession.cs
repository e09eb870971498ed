using System.Text.Json;
using FineTunePlatform.Contracts.Datasets;
using FineTunePlatform.Contracts.Training;
using FineTunePlatform.ServiceDefaults;
using FineTunePlatform.Training.Worker.Backends;
using Google.Protobuf;
using Grpc.Core;

namespace FineTunePlatform.Training.Worker.Training;

/// <summary>
/// One claimed attempt, as its backend sees it. Events queue locally and go out with each heartbeat, so a training
/// step never waits on the network; the heartbeat's answer (cancelled, paused, lost) stops the backend at its next step.
/// </summary>
public sealed class TrainingSession(
    TrainingJob job,
    int attempt,
    string workerId,
    TrainerService.TrainerServiceClient trainer,
    DatasetService.DatasetServiceClient datasets,
    Metadata projectHeaders) : ITrainingSession
{
    private const int ChunkBytes = 1024 * 1024;
    private readonly List<WorkerEvent> _events = [];
    private readonly SemaphoreSlim _flushing = new(1, 1);
    private int _step;
    private int _totalSteps;

    /// <summary>Why the training service told this attempt to stop (cancelled, paused, lost), or null.</summary>
    public HeartbeatAction? StopReason { get; private set; }

    public void ReportProgress(int step, int totalSteps)
    {
        Volatile.Write(ref _totalSteps, totalSteps);
        Volatile.Write(ref _step, step);
    }

    public void ReportEvent(string message, string level = "info", string type = "message", object? data = null)
    {
        // The id is ours, so a batch sent again after a call that timed out is recorded once (see ReportEvents).
        var jobEvent = new WorkerEvent { Id = RandomIds.WithPrefix("ft-event-"), Message = message, Level = level, Type = type, DataJson = data is null ? "" : JsonSerializer.Serialize(data) };
        lock (_events)
        {
            _events.Add(jobEvent);
        }
    }

    public async Task<Stream> OpenFileAsync(string fileId, CancellationToken cancellationToken)
    {
        using var call = datasets.ReadContent(new ReadContentRequest { FileId = fileId }, projectHeaders, cancellationToken: cancellationToken);
        return await DownloadAsync(call.ResponseStream, chunk => chunk.Data, cancellationToken);
    }

    public async Task<Stream> OpenCheckpointAsync(string checkpointId, CancellationToken cancellationToken)
    {
        using var call = trainer.ReadCheckpoint(new ReadCheckpointRequest { CheckpointId = checkpointId }, cancellationToken: cancellationToken);
        return await DownloadAsync(call.ResponseStream, chunk => chunk.Data, cancellationToken);
    }

    public async Task<string> SaveCheckpointAsync(int step, int epoch, CheckpointMetrics metrics, Action<Stream> write, CancellationToken cancellationToken)
    {
        // Events up to this step first, so the history reads in order; if they cannot go now, the next heartbeat sends them.
        try
        {
            await FlushEventsAsync(cancellationToken);
        }
        catch (RpcException ex) when (ex.StatusCode is StatusCode.Unavailable or StatusCode.DeadlineExceeded)
        {
        }

        await using var file = TemporaryFile();
        write(file);

        // A training-service restart must not cost the epoch: the upload starts over from the file's beginning.
        return await TransientRpc.RetryAsync(
            () =>
            {
                file.Position = 0;
                return UploadAsync(file, step, epoch, metrics, cancellationToken);
            },
            cancellationToken);
    }

    private async Task<string> UploadAsync(FileStream file, int step, int epoch, CheckpointMetrics metrics, CancellationToken cancellationToken)
    {
        using var upload = trainer.UploadCheckpoint(cancellationToken: cancellationToken);
        await upload.RequestStream.WriteAsync(new CheckpointUpload
        {
            Metadata = new CheckpointUploadMetadata { JobId = job.Id, Attempt = attempt, WorkerId = workerId, Step = step, Epoch = epoch, Metrics = metrics },
        }, cancellationToken);
        var buffer = new byte[ChunkBytes];
        int read;
        while ((read = await file.ReadAsync(buffer, cancellationToken)) > 0)
        {
            await upload.RequestStream.WriteAsync(new CheckpointUpload { Chunk = ByteString.CopyFrom(buffer, 0, read) }, cancellationToken);
        }

        await upload.RequestStream.CompleteAsync();
        return (await upload).Id;
    }

    /// <summary>Heartbeats until `stop` is cancelled; cancels it itself when the training service says to stop.</summary>
    public async Task RunHeartbeatsAsync(TimeSpan interval, CancellationTokenSource stop, Func<Exception, Task> onError)
    {
        using var timer = new PeriodicTimer(interval);
        try
        {
            while (await timer.WaitForNextTickAsync(stop.Token))
            {
                try
                {
                    await FlushEventsAsync(stop.Token);
                    var answer = await trainer.HeartbeatAsync(new JobHeartbeat
                    {
                        JobId = job.Id, Attempt = attempt, WorkerId = workerId, Step = Volatile.Read(ref _step), TotalSteps = Volatile.Read(ref _totalSteps),
                    }, deadline: DateTime.UtcNow.AddSeconds(5), cancellationToken: stop.Token);
                    if (answer.Action != HeartbeatAction.Continue)
                    {
                        StopReason = answer.Action;
                        await stop.CancelAsync();
                    }
                }
                catch (Exception ex) when (!stop.IsCancellationRequested)
                {
                    // The training service may be restarting: keep training, the lease outlives a short outage.
                    await onError(ex);
                }
            }
        }
        catch (Exception) when (stop.IsCancellationRequested)
        {
            // Stopped mid-call (OperationCanceledException, or RpcException with status Cancelled): the attempt is over.
        }
    }

    public async Task FlushEventsAsync(CancellationToken cancellationToken)
    {
        await _flushing.WaitAsync(cancellationToken);
        try
        {
            List<WorkerEvent> pending;
            lock (_events)
            {
                pending = _events.Take(1000).ToList();
                _events.RemoveRange(0, pending.Count);
            }

            if (pending.Count == 0)
            {
                return;
            }

            var batch = new ReportEventsRequest { JobId = job.Id, Attempt = attempt, WorkerId = workerId };
            batch.Events.AddRange(pending);
            try
            {
                await trainer.ReportEventsAsync(batch, deadline: DateTime.UtcNow.AddSeconds(10), cancellationToken: cancellationToken);
            }
            catch (RpcException ex) when (ex.StatusCode is StatusCode.Unavailable or StatusCode.DeadlineExceeded)
            {
                // Not delivered: back in front of anything newer, for the next flush.
                lock (_events)
                {
                    _events.InsertRange(0, pending);
                }

                throw;
            }
        }
        finally
        {
            _flushing.Release();
        }
    }

    private static async Task<Stream> DownloadAsync<T>(IAsyncStreamReader<T> chunks, Func<T, ByteString> data, CancellationToken cancellationToken)
    {
        var file = TemporaryFile();
        try
        {
            await foreach (var chunk in chunks.ReadAllAsync(cancellationToken))
            {
                await file.WriteAsync(data(chunk).Memory, cancellationToken);
            }

            file.Position = 0;
            return file;
        }
        catch
        {
            await file.DisposeAsync();
            throw;
        }
    }

    private static FileStream TemporaryFile() => new(
        Path.Combine(Path.GetTempPath(), $"ftp-worker-{Guid.NewGuid():N}"), FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None, 81920,
        FileOptions.DeleteOnClose | FileOptions.Asynchronous);
}
