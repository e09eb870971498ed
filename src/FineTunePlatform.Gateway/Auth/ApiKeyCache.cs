using System.Collections.Concurrent;
using FineTunePlatform.Gateway.Infrastructure;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace FineTunePlatform.Gateway.Auth;

/// <summary>
/// Resolves presented keys to identities with one database read per key per few seconds instead of per request.
/// An entry is fresh for 5 s; for 5 s more it is still served while one background read refreshes it, so a busy key
/// never makes requests wait on the database, and however many requests miss at once, one read per key runs.
/// Revocation and limit changes drop the entries at once on this gateway (a read already under way when they do is
/// not stored), and the lifetime bounds staleness elsewhere.
/// </summary>
public sealed partial class ApiKeyCache(IServiceScopeFactory scopes, TimeProvider time, IOptions<RateLimitDefaults> defaults, ILogger<ApiKeyCache> logger)
{
    private static readonly TimeSpan Lifetime = TimeSpan.FromSeconds(5);
    private readonly ConcurrentDictionary<string, Entry> _entries = new();
    private readonly ConcurrentDictionary<string, Task<Entry>> _loads = new();
    private long _generation;

    private sealed record Entry(KeyIdentity? Identity, string? Failure, DateTimeOffset FreshUntil);

    /// <summary>The identity for a key hash, or the reason it is refused.</summary>
    public async Task<(KeyIdentity? Identity, string? Failure)> ResolveAsync(string hash, CancellationToken cancellationToken)
    {
        var entry = await GetAsync(hash, () => LoadKeyAsync(hash), cancellationToken);
        return (entry.Identity, entry.Failure);
    }

    /// <summary>
    /// The identity for a key hash only if it is held here and valid, within the same 10 s a cached identity is
    /// served for anyway: no database read. Used while the caller's address is throttled for failed authentications
    /// (<see cref="AuthenticationFailures"/>), so a key in use keeps working beside a guesser at the same address.
    /// </summary>
    public KeyIdentity? TryGetValid(string hash)
    {
        var now = time.GetUtcNow();
        return _entries.TryGetValue(hash, out var entry) && entry.FreshUntil + Lifetime > now && entry.Identity is { } identity
            && (identity.ExpiresAt is null || identity.ExpiresAt > now)
            ? identity
            : null;
    }

    private async Task<(KeyIdentity?, string?)> LoadKeyAsync(string hash)
    {
        var now = time.GetUtcNow();
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<GatewayDbContext>();
        var found = await db.ApiKeys.AsNoTracking()
            .Where(key => key.Hash == hash)
            .Join(db.Projects, key => key.ProjectId, project => project.Id, (key, project) => new { key, project })
            .SingleOrDefaultAsync();
        if (found is null)
        {
            return (null, "Incorrect API key provided");
        }

        if (found.key.RevokedAt is not null)
        {
            return (null, "This API key has been revoked");
        }

        if (found.key.ExpiresAt <= now)
        {
            return (null, "This API key has expired");
        }

        if (found.key.LastUsedAt is null || now - found.key.LastUsedAt > TimeSpan.FromMinutes(1))
        {
            // Coarse on purpose: last-used is for people auditing keys, not worth a write per request.
            await db.ApiKeys.Where(key => key.Id == found.key.Id)
                .ExecuteUpdateAsync(setters => setters.SetProperty(key => key.LastUsedAt, now));
        }

        var fallback = defaults.Value;
        return (new KeyIdentity(
            found.key.Id, found.key.ProjectId, found.key.Role, found.key.Name, found.key.ExpiresAt,
            new RateLimits(found.project.RequestsPerMinute ?? fallback.RequestsPerMinute, found.project.TokensPerMinute ?? fallback.TokensPerMinute),
            new RateLimits(found.key.RequestsPerMinute, found.key.TokensPerMinute)), null);
    }

    /// <summary>
    /// The identity of an internal call made on a project's behalf (the evaluation service sampling models): the
    /// project's limits apply; the key limits do not, as no key is presented.
    /// </summary>
    public async Task<KeyIdentity?> ResolveProjectAsync(InternalCaller caller, CancellationToken cancellationToken)
    {
        var entry = await GetAsync($"internal:{caller.ProjectId}:{caller.KeyId}", async () =>
        {
            await using var scope = scopes.CreateAsyncScope();
            var db = scope.ServiceProvider.GetRequiredService<GatewayDbContext>();
            var project = await db.Projects.AsNoTracking().SingleOrDefaultAsync(candidate => candidate.Id == caller.ProjectId);
            var fallback = defaults.Value;
            var identity = project is null ? null : new KeyIdentity(
                caller.KeyId ?? "internal", project.Id, caller.Role, "internal", null,
                new RateLimits(project.RequestsPerMinute ?? fallback.RequestsPerMinute, project.TokensPerMinute ?? fallback.TokensPerMinute),
                new RateLimits(null, null));
            return (identity, identity is null ? "unknown project" : null);
        }, cancellationToken);
        return entry.Identity;
    }

    private async Task<Entry> GetAsync(string cacheKey, Func<Task<(KeyIdentity?, string?)>> load, CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        if (_entries.TryGetValue(cacheKey, out var entry) && (entry.Identity?.ExpiresAt is null || entry.Identity.ExpiresAt > now))
        {
            if (entry.FreshUntil > now)
            {
                return entry;
            }

            if (entry.FreshUntil + Lifetime > now)
            {
                _ = RefreshInBackgroundAsync(cacheKey, load);
                return entry;
            }
        }

        // The read is shared, so one caller giving up must not cancel it for the others.
        return await Load(cacheKey, load).WaitAsync(cancellationToken);
    }

    private async Task RefreshInBackgroundAsync(string cacheKey, Func<Task<(KeyIdentity?, string?)>> load)
    {
        try
        {
            await Load(cacheKey, load);
        }
        catch (Exception ex)
        {
            // The stale entry keeps serving until it expires; the next request after that reads synchronously.
            LogRefreshFailed(logger, ex);
        }
    }

    /// <summary>One read per cache key at a time, however many callers ask.</summary>
    private Task<Entry> Load(string cacheKey, Func<Task<(KeyIdentity?, string?)>> load)
    {
        if (_loads.TryGetValue(cacheKey, out var running))
        {
            return running;
        }

        var completion = new TaskCompletionSource<Entry>(TaskCreationOptions.RunContinuationsAsynchronously);
        if (!_loads.TryAdd(cacheKey, completion.Task))
        {
            return _loads.TryGetValue(cacheKey, out running) ? running : Load(cacheKey, load);
        }

        _ = RunAsync();
        return completion.Task;

        async Task RunAsync()
        {
            var generation = Interlocked.Read(ref _generation);
            try
            {
                var (identity, failure) = await load();
                var entry = new Entry(identity, failure, time.GetUtcNow() + Lifetime);
                // An invalidation during the read means what was read may be outdated: answer with it, don't keep it.
                if (Interlocked.Read(ref _generation) == generation)
                {
                    _entries[cacheKey] = entry;
                    if (_entries.Count > SweepThreshold)
                    {
                        ForgetExpired();
                    }
                }

                _loads.TryRemove(cacheKey, out _);
                completion.SetResult(entry);
            }
            catch (Exception ex)
            {
                _loads.TryRemove(cacheKey, out _);
                completion.SetException(ex);
            }
        }
    }

    /// <summary>
    /// Entries past their stale window are never served again but would stay: unknown keys are cached too (a client
    /// retrying a wrong key costs one read per 5 s), so a stream of random keys would grow the cache without bound.
    /// Past this many entries, each new one sweeps out the expired.
    /// </summary>
    private const int SweepThreshold = 10_000;

    private void ForgetExpired()
    {
        var now = time.GetUtcNow();
        foreach (var (cacheKey, entry) in _entries)
        {
            if (entry.FreshUntil + Lifetime <= now)
            {
                _entries.TryRemove(cacheKey, out _);
            }
        }
    }

    /// <summary>Forgets every cached identity of a project (its keys or limits changed).</summary>
    public void InvalidateProject(string projectId)
    {
        Interlocked.Increment(ref _generation);
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
        Interlocked.Increment(ref _generation);
        foreach (var (hash, entry) in _entries)
        {
            if (entry.Identity?.KeyId == keyId)
            {
                _entries.TryRemove(hash, out _);
            }
        }
    }

    [LoggerMessage(LogLevel.Warning, "Refreshing a cached API key identity failed; the cached one serves until it expires")]
    private static partial void LogRefreshFailed(ILogger logger, Exception exception);
}

/// <summary>Platform-wide defaults for projects without their own limits (`Gateway:RateLimits`); null = unlimited.</summary>
public sealed class RateLimitDefaults
{
    public int? RequestsPerMinute { get; set; } = 600;

    public int? TokensPerMinute { get; set; } = 1_000_000;

    /// <summary>Event streams (`/events?stream=true`) one key may hold open at once on one gateway.</summary>
    public int ConcurrentStreamsPerKey { get; set; } = 20;
}
