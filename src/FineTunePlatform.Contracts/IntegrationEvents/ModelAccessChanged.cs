namespace FineTunePlatform.Contracts.IntegrationEvents;

/// <summary>
/// A model became visible or invisible to some project (published, deleted, granted, revoked). Gateways drop their
/// cached model resolutions for it, so a revocation takes effect on the next request.
/// </summary>
public sealed record ModelAccessChanged(string ModelId, string OwnerProjectId, string Reason) : IntegrationEvent;
