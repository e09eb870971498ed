using System.Collections.Concurrent;
using FineTunePlatform.Gateway.Infrastructure;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace FineTunePlatform.Gateway.Auth;

/// <summary>
/// Resolves presented keys to identities with one database read per key per few seconds instead of per request.
/// Revocation and limit changes drop the entry at once on this gateway (and the TTL bounds staleness elsewhere).
/// </summary>
public sealed class ApiKeyCache(IServiceScopeFactory scopes, TimeProvider time, IOptions<RateLimitDefaults> defaults)
{
    private static readonly TimeSpan Lifetime = TimeSpan.FromSeconds(5);
    private readonly ConcurrentDictionary<string, (KeyIdentity? Identity, string? Failure, DateTimeOffset Until)> _entries = new();

    /// <summary>The identity for a key hash, or the reason it is refused.</summary>
    public async Task<(KeyIdentity? Identity, string? Failure)> ResolveAsync(string hash, CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        if (_entries.TryGetValue(hash, out var entry) && entry.Until > now
            && (entry.Identity?.ExpiresAt is null || entry.Identity.ExpiresAt > now))
        {
            return (entry.Identity, entry.Failure);
        }

        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<GatewayDbContext>();
        var found = await db.ApiKeys.AsNoTracking()
            .Where(key => key.Hash == hash)
            .Join(db.Projects, key => key.ProjectId, project => project.Id, (key, project) => new { key, project })
            .SingleOrDefaultAsync(cancellationToken);

        (KeyIdentity?, string?) resolved;
        if (found is null)
        {
            resolved = (null, "Incorrect API key provided");
        }
        else if (found.key.RevokedAt is not null)
        {
            resolved = (null, "This API key has been revoked");
        }
        else if (found.key.ExpiresAt <= now)
        {
            resolved = (null, "This API key has expired");
        }
        else
        {
            var fallback = defaults.Value;
            resolved = (new KeyIdentity(
                found.key.Id, found.key.ProjectId, found.key.Role, found.key.Name, found.key.ExpiresAt,
                new RateLimits(found.project.RequestsPerMinute ?? fallback.RequestsPerMinute, found.project.TokensPerMinute ?? fallback.TokensPerMinute),
                new RateLimits(found.key.RequestsPerMinute, found.key.TokensPerMinute)), null);
            if (found.key.LastUsedAt is null || now - found.key.LastUsedAt > TimeSpan.FromMinutes(1))
            {
                // Coarse on purpose: last-used is for people auditing keys, not worth a write per request.
                await db.ApiKeys.Where(key => key.Id == found.key.Id)
                    .ExecuteUpdateAsync(setters => setters.SetProperty(key => key.LastUsedAt, now), cancellationToken);
            }
        }

        _entries[hash] = (resolved.Item1, resolved.Item2, now + Lifetime);
        return resolved;
    }

    /// <summary>
    /// The identity of an internal call made on a project's behalf (the evaluation service sampling models): the
    /// project's limits apply; the key limits do not, as no key is presented.
    /// </summary>
    public async Task<KeyIdentity?> ResolveProjectAsync(InternalCaller caller, CancellationToken cancellationToken)
    {
        var cacheKey = $"internal:{caller.ProjectId}:{caller.KeyId}";
        var now = time.GetUtcNow();
        if (_entries.TryGetValue(cacheKey, out var entry) && entry.Until > now)
        {
            return entry.Identity;
        }

        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<GatewayDbContext>();
        var project = await db.Projects.AsNoTracking().SingleOrDefaultAsync(candidate => candidate.Id == caller.ProjectId, cancellationToken);
        var fallback = defaults.Value;
        var identity = project is null ? null : new KeyIdentity(
            caller.KeyId ?? "internal", project.Id, caller.Role, "internal", null,
            new RateLimits(project.RequestsPerMinute ?? fallback.RequestsPerMinute, project.TokensPerMinute ?? fallback.TokensPerMinute),
            new RateLimits(null, null));
        _entries[cacheKey] = (identity, identity is null ? "unknown project" : null, now + Lifetime);
        return identity;
    }

    /// <summary>Forgets every cached identity of a project (its keys or limits changed).</summary>
    public void InvalidateProject(string projectId)
    {
        foreach (var (hash, entry) in _entries)
        {
            if (entry.Identity?.ProjectId == projectId)
            {
                _entries.TryRemove(hash, out _);
            }
        }
    }

    public void InvalidateKey(string keyId)
    {
        foreach (var (hash, entry) in _entries)
        {
            if (entry.Identity?.KeyId == keyId)
            {
                _entries.TryRemove(hash, out _);
            }
        }
    }
}

/// <summary>Platform-wide defaults for projects without their own limits (`Gateway:RateLimits`); null = unlimited.</summary>
public sealed class RateLimitDefaults
{
    public int? RequestsPerMinute { get; set; } = 600;

    public int? TokensPerMinute { get; set; } = 1_000_000;
}
