using FineTunePlatform.Gateway.Auth;
using FineTunePlatform.Gateway.Infrastructure;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;

namespace FineTunePlatform.Gateway.Tests;

/// <summary>
/// The key cache on a fake clock against the gateway's real database: a change made elsewhere (another gateway
/// revoking a key, which this one hears nothing of) is served for at most the fresh 5 s, then for 5 s while one
/// background read catches up, and never after.
/// </summary>
public sealed class ApiKeyCacheTests(GatewayFixture fixture) : IClassFixture<GatewayFixture>
{
    [Fact]
    public async Task A_change_made_elsewhere_is_served_while_fresh_then_refreshed_off_the_request_path()
    {
        var (_, key) = await fixture.CreateProjectAsync("member");
        var hash = ApiKeyHasher.Hash(key);
        var clock = new FakeTimeProvider(DateTimeOffset.UtcNow);
        var cache = CacheOn(clock);

        Assert.NotNull((await cache.ResolveAsync(hash, default)).Identity);
        await RevokeInDatabaseAsync(hash);

        clock.Advance(TimeSpan.FromSeconds(4));
        Assert.NotNull((await cache.ResolveAsync(hash, default)).Identity);

        // Stale: still answered from the cache at once, while one read refreshes the entry in the background.
        clock.Advance(TimeSpan.FromSeconds(2));
        Assert.NotNull((await cache.ResolveAsync(hash, default)).Identity);
        var deadline = DateTime.UtcNow.AddSeconds(10);
        (KeyIdentity? Identity, string? Failure) refreshed;
        do
        {
            Assert.True(DateTime.UtcNow < deadline, "The background refresh never replaced the stale entry.");
            await Task.Delay(20);
            refreshed = await cache.ResolveAsync(hash, default);
        }
        while (refreshed.Identity is not null);

        Assert.Equal("This API key has been revoked", refreshed.Failure);
    }

    [Fact]
    public async Task An_entry_past_its_stale_window_is_read_again_before_answering()
    {
        var (_, key) = await fixture.CreateProjectAsync("member");
        var hash = ApiKeyHasher.Hash(key);
        var clock = new FakeTimeProvider(DateTimeOffset.UtcNow);
        var cache = CacheOn(clock);

        Assert.NotNull((await cache.ResolveAsync(hash, default)).Identity);
        await RevokeInDatabaseAsync(hash);
        clock.Advance(TimeSpan.FromSeconds(11));

        Assert.Equal("This API key has been revoked", (await cache.ResolveAsync(hash, default)).Failure);
    }

    /// <summary>A cache of its own on the gateway's database, reading time from `clock`.</summary>
    private ApiKeyCache CacheOn(TimeProvider clock) =>
        new(fixture.Gateway.Services.GetRequiredService<IServiceScopeFactory>(), clock, Options.Create(new RateLimitDefaults()), NullLogger<ApiKeyCache>.Instance);

    private async Task RevokeInDatabaseAsync(string hash)
    {
        await using var scope = fixture.Gateway.Services.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<GatewayDbContext>();
        Assert.Equal(1, await db.ApiKeys.Where(candidate => candidate.Hash == hash)
            .ExecuteUpdateAsync(setters => setters.SetProperty(candidate => candidate.RevokedAt, DateTimeOffset.UtcNow)));
    }
}
