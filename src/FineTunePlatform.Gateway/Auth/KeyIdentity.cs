namespace FineTunePlatform.Gateway.Auth;

/// <summary>
/// What an authenticated key may do, resolved once and cached: its project, role, and the rate limits that apply
/// (the key's own, else the project's, else the platform defaults; null means unlimited).
/// </summary>
public sealed record KeyIdentity(
    string KeyId,
    string ProjectId,
    string Role,
    string Name,
    DateTimeOffset? ExpiresAt,
    RateLimits ProjectLimits,
    RateLimits KeyLimits);

public sealed record RateLimits(int? RequestsPerMinute, int? TokensPerMinute);
