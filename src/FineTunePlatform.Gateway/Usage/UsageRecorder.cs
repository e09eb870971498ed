using System.Threading.Channels;
using FineTunePlatform.Gateway.Infrastructure;
using Microsoft.EntityFrameworkCore;

namespace FineTunePlatform.Gateway.Usage;

/// <summary>
/// Records usage off the request path: requests drop a record into a bounded channel (never waiting), and a
/// background writer folds a second's worth of records per (project, key, model, day) into one upsert each.
/// </summary>
public sealed partial class UsageRecorder(IServiceScopeFactory scopes, ILogger<UsageRecorder> logger) : BackgroundService
{
    private readonly Channel<UsageRecord> _records = Channel.CreateBounded<UsageRecord>(
        new BoundedChannelOptions(100_000) { FullMode = BoundedChannelFullMode.DropWrite, SingleReader = true });

    public void Record(UsageRecord record)
    {
        var project = new KeyValuePair<string, object?>("project", record.ProjectId);
        var model = new KeyValuePair<string, object?>("model", record.Model);
        PlatformMetrics.ChatTokens.Add(record.PromptTokens, project, model, new KeyValuePair<string, object?>("kind", "prompt"));
        PlatformMetrics.ChatTokens.Add(record.CompletionTokens, project, model, new KeyValuePair<string, object?>("kind", "completion"));
        if (!_records.Writer.TryWrite(record))
        {
            LogDropped(logger);
        }
    }

    /// <summary>Writes everything recorded so far (tests and shutdown).</summary>
    public async Task FlushAsync(CancellationToken cancellationToken)
    {
        var batch = new List<UsageRecord>();
        while (_records.Reader.TryRead(out var record))
        {
            batch.Add(record);
        }

        await WriteAsync(batch, cancellationToken);
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        while (await _records.Reader.WaitToReadAsync(stoppingToken))
        {
            await Task.Delay(TimeSpan.FromSeconds(1), stoppingToken);
            try
            {
                await FlushAsync(stoppingToken);
            }
            catch (Exception ex) when (!stoppingToken.IsCancellationRequested)
            {
                LogWriteFailed(logger, ex);
            }
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
            // A host stopped twice at once (WebApplicationFactory's StopAsync racing app.Run()'s own stop-and-dispose)
            // can dispose the database connection pool under this last flush; say what was lost instead of failing
            // the shutdown.
            LogWriteFailed(logger, ex);
        }
    }

    private async Task WriteAsync(List<UsageRecord> batch, CancellationToken cancellationToken)
    {
        if (batch.Count == 0)
        {
            return;
        }

        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<GatewayDbContext>();
        foreach (var group in batch.GroupBy(record => (record.ProjectId, record.KeyId, record.Model, record.Day)))
        {
            var (projectId, keyId, model, day) = group.Key;
            long requests = group.Count();
            var prompt = group.Sum(record => record.PromptTokens);
            var completion = group.Sum(record => record.CompletionTokens);
            await db.Database.ExecuteSqlInterpolatedAsync($"""
                INSERT INTO usage_daily ("ProjectId", "KeyId", "Model", "Day", "Requests", "PromptTokens", "CompletionTokens")
                VALUES ({projectId}, {keyId}, {model}, {day}, {requests}, {prompt}, {completion})
                ON CONFLICT ("ProjectId", "KeyId", "Model", "Day") DO UPDATE SET
                  "Requests" = usage_daily."Requests" + EXCLUDED."Requests",
                  "PromptTokens" = usage_daily."PromptTokens" + EXCLUDED."PromptTokens",
                  "CompletionTokens" = usage_daily."CompletionTokens" + EXCLUDED."CompletionTokens"
                """, cancellationToken);
        }
    }

    [LoggerMessage(LogLevel.Warning, "Usage channel full: a usage record was dropped")]
    private static partial void LogDropped(ILogger logger);

    [LoggerMessage(LogLevel.Error, "Writing usage failed; the records of this batch are lost")]
    private static partial void LogWriteFailed(ILogger logger, Exception exception);
}
