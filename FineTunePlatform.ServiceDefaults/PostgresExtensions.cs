using HealthChecks.NpgSql;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace Microsoft.Extensions.Hosting;

/// <summary>
/// The PostgreSQL client registration Aspire.Npgsql.EntityFrameworkCore.PostgreSQL would give (it cannot be restored
/// here): one NpgsqlDataSource per service database, a pooled DbContext on it, Npgsql tracing, and a readiness check.
/// </summary>
public static class PostgresExtensions
{
    public static void AddNpgsqlDbContext<TContext>(this IHostApplicationBuilder builder, string connectionName)
        where TContext : DbContext
    {
        var example = $"Host=127.0.0.1;Port=5432;Username=postgres;Password=postgres;Database={connectionName}";
        var connectionString = builder.Configuration.GetRequiredConnectionString(connectionName, example);
        NpgsqlConnectionStringBuilder parsed;
        try
        {
            parsed = new NpgsqlConnectionStringBuilder(connectionString);
        }
        catch (ArgumentException ex)
        {
            throw ConnectionStringExtensions.Malformed(connectionName, example, ex.Message);
        }

        if (string.IsNullOrWhiteSpace(parsed.Host) || string.IsNullOrWhiteSpace(parsed.Database))
        {
            throw ConnectionStringExtensions.Malformed(connectionName, example, "it needs both Host and Database");
        }

        builder.Services.AddSingleton(serviceProvider => new NpgsqlDataSourceBuilder(connectionString)
            .UseLoggerFactory(serviceProvider.GetRequiredService<ILoggerFactory>())
            .Build());

        builder.Services.AddDbContextPool<TContext>((serviceProvider, options) =>
            options.UseNpgsql(serviceProvider.GetRequiredService<NpgsqlDataSource>()));

        builder.Services.AddHealthChecks().AddNpgSql(
            serviceProvider => serviceProvider.GetRequiredService<NpgsqlDataSource>(),
            name: connectionName,
            failureStatus: HealthStatus.Unhealthy,
            timeout: TimeSpan.FromSeconds(3));
    }

    /// <summary>
    /// Applies the context's EF Core migrations before the service starts serving (hosted services start before
    /// Kestrel listens). The database itself is created when missing, so a fresh server needs no manual step.
    /// </summary>
    public static IServiceCollection AddMigration<TContext>(this IServiceCollection services)
        where TContext : DbContext =>
        services.AddHostedService<MigrationHostedService<TContext>>();
}

internal sealed partial class MigrationHostedService<TContext>(
    IServiceProvider serviceProvider,
    ILogger<MigrationHostedService<TContext>> logger) : IHostedService
    where TContext : DbContext
{
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        using var activity = Telemetry.ActivitySource.StartActivity($"Migrate {typeof(TContext).Name}");
        await using var scope = serviceProvider.CreateAsyncScope();
        var context = scope.ServiceProvider.GetRequiredService<TContext>();
        await context.Database.MigrateAsync(cancellationToken);
        LogMigrated(logger, typeof(TContext).Name);
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    [LoggerMessage(LogLevel.Information, "Database for {Context} is migrated")]
    private static partial void LogMigrated(ILogger logger, string context);
}
