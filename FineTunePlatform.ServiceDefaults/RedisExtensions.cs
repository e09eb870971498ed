using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using StackExchange.Redis;

namespace Microsoft.Extensions.Hosting;

/// <summary>The Redis client registration Aspire.StackExchange.Redis would give: IConnectionMultiplexer plus a readiness check.</summary>
public static class RedisExtensions
{
    public static void AddRedisClient(this IHostApplicationBuilder builder, string connectionName = "redis")
    {
        const string example = "127.0.0.1:6379";
        var connectionString = builder.Configuration.GetRequiredConnectionString(connectionName, example);
        ConfigurationOptions options;
        try
        {
            options = ConfigurationOptions.Parse(connectionString);
        }
        catch (ArgumentException ex)
        {
            throw ConnectionStringExtensions.Malformed(connectionName, example, ex.Message);
        }

        if (options.EndPoints.Count == 0)
        {
            throw ConnectionStringExtensions.Malformed(connectionName, example, "it names no endpoint");
        }

        // Keep reconnecting in the background instead of failing start-up: Redis outages degrade the gateway
        // (per-process limits) rather than stopping it.
        options.AbortOnConnectFail = false;
        options.ConnectTimeout = 3000;
        // Commands fail fast while disconnected instead of waiting in a backlog: callers have fallbacks.
        options.BacklogPolicy = BacklogPolicy.FailFast;
        options.AsyncTimeout = 2000;

        builder.Services.AddSingleton<IConnectionMultiplexer>(_ => ConnectionMultiplexer.Connect(options));
        builder.Services.AddHealthChecks().AddRedis(
            serviceProvider => serviceProvider.GetRequiredService<IConnectionMultiplexer>(),
            name: connectionName,
            failureStatus: HealthStatus.Unhealthy,
            timeout: TimeSpan.FromSeconds(3));
    }
}
