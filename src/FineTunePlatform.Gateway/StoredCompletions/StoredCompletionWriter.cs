using System.Threading.Channels;
using FineTunePlatform.Gateway.Infrastructure;
using Microsoft.EntityFrameworkCore;

namespace FineTunePlatform.Gateway.StoredCompletions;

/// <summary>
/// Stores completions off the request path, so `store: true` costs a chat nothing but a channel write: requests
/// drop a completion into a bounded channel and a background writer inserts whatever is waiting in one batch. A
/// completion that cannot be stored (the channel is full, the database refuses it twice) never fails the chat that
/// produced it: it is logged with its id and counted on `finetuneplatform.stored_completions.dropped`.
/// </summary>
public sealed partial class StoredCompletionWriter(IServiceScopeFactory scopes, ILogger<StoredCompletionWriter> logger) : BackgroundService
{
    private const int MaxBatch = 200;

    private readonly Channel<StoredCompletion> _pending = Channel.CreateBounded<StoredCompletion>(
        new BoundedChannelOptions(10_000) { FullMode = BoundedChannelFullMode.DropWrite, SingleReader = true });

    /// <summary>
    /// Queues the completion `row` builds; building it cannot fail the chat either (an answer the gateway cannot
    /// read back, say): that is logged and counted as `invalid`.
    /// </summary>
    public void Store(string projectId, Func<StoredCompletion> row)
    {
        StoredCompletion completion;
        try
        {
            completion = row();
        }
        catch (Exception ex)
        {
            Dropped(projectId, "invalid");
            LogInvalid(logger, ex, projectId);
            return;
        }

        Store(completion);
    }

    public void Store(StoredCompletion completion)
    {
        if (!_pending.Writer.TryWrite(completion))
        {
            Dropped(completion.ProjectId, "queue_full");
            LogQueueFull(logger, completion.Id, completion.ProjectId);
        }
    }

    /// <summary>Writes everything queued so far: the loop's step, and the last write at shutdown once the loop has stopped.</summary>
    public async Task FlushAsync(CancellationToken cancellationToken)
    {
        var batch = new List<StoredCompletion>();
        while (batch.Count < MaxBatch && _pending.Reader.TryRead(out var completion))
        {
            batch.Add(completion);
        }

        while (batch.Count > 0)
        {
            await WriteAsync(batch, cancellationToken);
            batch.Clear();
            while (batch.Count < MaxBatch && _pending.Reader.TryRead(out var completion))
            {
                batch.Add(completion);
            }
        }
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        // No batching delay: a stored completion should be readable about as soon as its chat has answered.
        while (await _pending.Reader.WaitToReadAsync(stoppingToken))
        {
            await FlushAsync(stoppingToken);
        }
    }

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        await base.StopAsync(cancellationToken);
        try
        {
            await FlushAsync(cancellationToken);
        }
        catch (ObjectDisposedException ex)
        {
            LogWriteFailed(logger, ex, _pending.Reader.Count);
        }
    }

    /// <summary>One insert for the batch; if it fails, once more one by one, so one bad row costs only itself.</summary>
    private async Task WriteAsync(List<StoredCompletion> batch, CancellationToken cancellationToken)
    {
        try
        {
            await InsertAsync(batch, cancellationToken);
            return;
        }
        catch (Exception ex) when (!cancellationToken.IsCancellationRequested)
        {
            LogWriteFailed(logger, ex, batch.Count);
        }

        foreach (var completion in batch)
        {
            try
            {
                await InsertAsync([completion], cancellationToken);
            }
            catch (Exception ex) when (!cancellationToken.IsCancellationRequested)
            {
                Dropped(completion.ProjectId, "write_failed");
                LogDropped(logger, ex, completion.Id, completion.ProjectId);
            }
        }
    }

    private async Task InsertAsync(IReadOnlyList<StoredCompletion> completions, CancellationToken cancellationToken)
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<GatewayDbContext>();
        db.StoredCompletions.AddRange(completions);
        await db.SaveChangesAsync(cancellationToken);
    }

    private static void Dropped(string projectId, string reason) => PlatformMetrics.StoredCompletionsDropped.Add(1,
        new KeyValuePair<string, object?>("project", projectId), new KeyValuePair<string, object?>("reason", reason));

    [LoggerMessage(LogLevel.Error, "A completion of project {ProjectId} could not be read for storing and was not stored")]
    private static partial void LogInvalid(ILogger logger, Exception exception, string projectId);

    [LoggerMessage(LogLevel.Error, "Stored-completions queue full: completion {CompletionId} of project {ProjectId} was not stored")]
    private static partial void LogQueueFull(ILogger logger, string completionId, string projectId);

    [LoggerMessage(LogLevel.Warning, "Storing a batch of {Count} completions failed; storing them one by one")]
    private static partial void LogWriteFailed(ILogger logger, Exception exception, int count);

    [LoggerMessage(LogLevel.Error, "Completion {CompletionId} of project {ProjectId} could not be stored and is lost")]
    private static partial void LogDropped(ILogger logger, Exception exception, string completionId, string projectId);
}
