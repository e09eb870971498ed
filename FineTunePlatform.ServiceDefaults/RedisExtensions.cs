using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using StackExchange.Redis;

namespace Microsoft.Extensions.Hosting;

/// <summary>
/// Redis through Aspire.StackExchange.Redis (IConnectionMultiplexer, its health check and tracing), with the gateway's
/// choices: keep reconnecting in the background instead of failing start-up, and fail commands fast while
/// disconnected, because every caller has a fallback (per-process rate limits) and a Redis outage must degrade the
/// gateway, not stop it; its health check reports Degraded, not Unhealthy, for the same reason. A missing or malformed connection string stops start-up with our message.
/// </summary>
public static class RedisExtensions
{
    public static void AddRedis(this IHostApplicationBuilder builder, string connectionName = "redis")
    {
        const string example = "127.0.0.1:6379";
        var connectionString = builder.Configuration.GetRequiredConnectionString(connectionName, example);
        try
        {
            if (ConfigurationOptions.Parse(connectionString).EndPoints.Count == 0)
            {
                throw ConnectionStringExtensions.Malformed(connectionName, example, "it names no endpoint");
            }
        }
        catch (ArgumentException ex)
        {
            throw ConnectionStringExtensions.Malformed(connectionName, example, ex.Message);
        }

        builder.AddRedisClient(connectionName, configureOptions: options =>
        {
            options.AbortOnConnectFail = false;
            options.ConnectTimeout = 3000;
            options.BacklogPolicy = BacklogPolicy.FailFast;
            options.AsyncTimeout = 2000;
        });

        // Redis down is the degraded mode (per-process limits), not an outage: readiness must say Degraded (still 200)
        // so probes keep the gateway in rotation. Aspire registers its Redis check as Unhealthy on failure.
        builder.Services.Configure<HealthCheckServiceOptions>(options =>
        {
            foreach (var registration in options.Registrations.Where(registration => registration.Name.StartsWith(AspireRedisHealthCheckName, StringComparison.Ordinal)))
            {
                registration.FailureStatus = HealthStatus.Degraded;
            }
        });
    }

    /// <summary>The name Aspire.StackExchange.Redis gives its health check (with `_{connection}` for a keyed client).</summary>
    private const string AspireRedisHealthCheckName = "StackExchange.Redis";
}
