using System.Text.Json;
using MassTransit;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata.Builders;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace FineTunePlatform.ServiceDefaults.Messaging;

/// <summary>
/// An integration event written in the same transaction as the change it announces (`outbox_messages`), so a
/// process that dies after committing still has it sent: <see cref="OutboxRelay{TContext}"/> publishes it and deletes
/// it. MassTransit's own EF Core outbox does this, but its package is not served here. Delivery is at least once
/// (a relay that dies after publishing and before deleting sends it again), so consumers must be idempotent; ours
/// treat every message as a nudge and read the truth from its owner.
/// </summary>
public sealed class OutboxMessage
{
    public long Id { get; init; }

    /// <summary>The message's type (its full name in the Contracts assembly).</summary>
    public required string Type { get; init; }

    public required string Body { get; init; }

    public DateTimeOffset CreatedAt { get; init; }
}

/// <summary>The `outbox_messages` table; a service whose DbContext writes events through the outbox applies it.</summary>
public sealed class OutboxMessageConfiguration : IEntityTypeConfiguration<OutboxMessage>
{
    public void Configure(EntityTypeBuilder<OutboxMessage> builder)
    {
        builder.ToTable("outbox_messages");
        builder.HasKey(message => message.Id);
        builder.Property(message => message.Id).UseIdentityAlwaysColumn();
        builder.Property(message => message.Type).HasMaxLength(256);
        builder.Property(message => message.Body).HasColumnType("jsonb");
    }
}

public static class IntegrationEventOutbox
{
    /// <summary>Adds the event to the context: it is sent once the caller's SaveChanges commits, and never if it does not.</summary>
    public static void AddIntegrationEvent<T>(this DbContext db, T message, DateTimeOffset now)
        where T : class =>
        db.Set<OutboxMessage>().Add(new OutboxMessage { Type = typeof(T).FullName!, Body = JsonSerializer.Serialize(message), CreatedAt = now });

    /// <summary>The relay for a service's DbContext; <see cref="OutboxSignal"/> wakes it after a commit.</summary>
    public static void AddIntegrationEventOutbox<TContext>(this IServiceCollection services)
        where TContext : DbContext
    {
        services.AddSingleton<OutboxSignal>();
        services.AddHostedService<OutboxRelay<TContext>>();
    }
}

/// <summary>Wakes the relay after a commit that wrote events, so they leave now rather than at the next poll.</summary>
public sealed class OutboxSignal : WakeSignal;

/// <summary>
/// Publishes the outbox's messages in order and deletes them, a batch per transaction. Rows are taken with
/// FOR UPDATE SKIP LOCKED, so replicas of a service share the work without sending a message twice while both live.
/// </summary>
public sealed partial class OutboxRelay<TContext>(IServiceScopeFactory scopes, OutboxSignal signal, ILogger<OutboxRelay<TContext>> logger) : BackgroundService
    where TContext : DbContext
{
    private const int BatchSize = 100;
    private static readonly TimeSpan Poll = TimeSpan.FromSeconds(1);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        while (!stoppingToken.IsCancellationRequested)
        {
            var sent = 0;
            try
            {
                sent = await SendBatchAsync(stoppingToken);
            }
            catch (Exception ex) when (ex is not OperationCanceledException || !stoppingToken.IsCancellationRequested)
            {
                // The broker or the database is away: the messages stay and are sent when they are back.
                LogSendFailed(logger, ex);
            }

            if (sent < BatchSize)
            {
                await signal.WaitAsync(Poll, stoppingToken);
            }
        }
    }

    private async Task<int> SendBatchAsync(CancellationToken cancellationToken)
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<TContext>();
        var bus = scope.ServiceProvider.GetRequiredService<IPublishEndpoint>();
        await using var transaction = await db.Database.BeginTransactionAsync(cancellationToken);
        var batch = await db.Set<OutboxMessage>()
            .FromSql($"SELECT * FROM outbox_messages ORDER BY \"Id\" LIMIT {BatchSize} FOR UPDATE SKIP LOCKED")
            .ToListAsync(cancellationToken);
        foreach (var message in batch)
        {
            var type = typeof(Contracts.IntegrationEvents.IntegrationEvent).Assembly.GetType(message.Type);
            if (type is null || JsonSerializer.Deserialize(message.Body, type) is not { } body)
            {
                LogUnknownMessage(logger, message.Id, message.Type);
                continue;
            }

            await bus.Publish(body, type, cancellationToken);
        }

        db.Set<OutboxMessage>().RemoveRange(batch);
        await db.SaveChangesAsync(cancellationToken);
        await transaction.CommitAsync(cancellationToken);
        return batch.Count;
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Sending integration events from the outbox failed; they are sent again")]
    private static partial void LogSendFailed(ILogger logger, Exception exception);

    [LoggerMessage(Level = LogLevel.Error, Message = "Outbox message {Id} names an unknown type {Type}; it is dropped")]
    private static partial void LogUnknownMessage(ILogger logger, long id, string type);
}
