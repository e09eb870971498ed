namespace FineTunePlatform.Contracts.IntegrationEvents;

/// <summary>
/// Base of every bus message. Messages are nudges, the database row is the truth: consumers must be idempotent,
/// keyed by the identifiers each message carries.
/// </summary>
public abstract record IntegrationEvent
{
    public Guid EventId { get; init; } = Guid.NewGuid();
    public DateTimeOffset OccurredAt { get; init; } = DateTimeOffset.UtcNow;
}
