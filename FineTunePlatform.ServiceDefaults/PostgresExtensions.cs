using System.Diagnostics;
using HealthChecks.NpgSql;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Storage;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace Microsoft.Extensions.Hosting;

/// <summary>
/// A service's database through Aspire's client integrations: Aspire.Npgsql registers the NpgsqlDataSource (Npgsql
/// tracing and metrics, configuration under Aspire:Npgsql), the pooled DbContext runs on that data source (the
/// training service's LISTEN/NOTIFY and the chunk store use the same one), and Aspire.Npgsql.EntityFrameworkCore
/// .PostgreSQL enriches it with EF Core's telemetry.
/// Two decisions of ours on top: EF's retrying execution strategy stays off (Aspire turns it on by default), because
/// the services run their own transactions (a job transition, a claim, a checkpoint with its rows) and a retrying
/// strategy refuses user-initiated transactions unless every one is wrapped in it, and a retried commit could apply
/// twice; and the readiness check is named after the database (`datasetsdb`, ...), so /health says which one failed.
/// A missing or malformed connection string stops start-up with our message naming the key and an example.
/// </summary>
public static class PostgresExtensions
{
    public static void AddServiceDatabase<TContext>(this IHostApplicationBuilder builder, string connectionName)
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

        // Commands are traced inside a request's or a job's trace only: the services' background loops (the key
        // cache's refresh, the scheduler's passes, LISTEN) would otherwise add a root trace every second.
        builder.AddNpgsqlDataSource(connectionName, settings => settings.DisableHealthChecks = true,
            dataSource => dataSource.ConfigureTracing(tracing => tracing.ConfigureCommandFilter(_ => Activity.Current is not null)));
        builder.Services.AddDbContextPool<TContext>((serviceProvider, options) =>
            options.UseNpgsql(serviceProvider.GetRequiredService<NpgsqlDataSource>()));
        builder.EnrichNpgsqlDbContext<TContext>(settings =>
        {
            settings.DisableRetry = true;
            settings.DisableHealthChecks = true;
        });

        builder.Services.AddHealthChecks().AddNpgSql(
            serviceProvider => serviceProvider.GetRequiredService<NpgsqlDataSource>(),
            name: connectionName,
            failureStatus: HealthStatus.Unhealthy,
            timeout: TimeSpan.FromSeconds(3));
    }

    /// <summary>
    /// Applies the context's EF Core migrations before the service starts serving (hosted services start before
    /// Kestrel listens). Under the platform the AppHost has made the database and the service's own role that owns
    /// it (which may not create databases); a missing database is created here only where the credentials may (the
    /// tests' throwaway databases, as the superuser). Any number of replicas may start at once: one creates the
    /// database, and the migrations run under a PostgreSQL advisory lock, one replica at a time (the later ones find
    /// nothing left to apply).
    /// </summary>
    public static IServiceCollection AddMigration<TContext>(this IServiceCollection services)
        where TContext : DbContext =>
        services.AddHostedService<MigrationHostedService<TContext>>();
}

internal sealed partial class MigrationHostedService<TContext>(
    IServiceProvider serviceProvider,
    NpgsqlDataSource dataSource,
    ILogger<MigrationHostedService<TContext>> logger) : IHostedService
    where TContext : DbContext
{
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        using var activity = Telemetry.ActivitySource.StartActivity($"Migrate {typeof(TContext).Name}");
        await using var scope = serviceProvider.CreateAsyncScope();
        var context = scope.ServiceProvider.GetRequiredService<TContext>();
        await CreateDatabaseIfMissingAsync(context, cancellationToken);

        // Session-level lock on its own connection: held across EF's own connections and transactions, released by
        // the unlock or, if this process dies mid-migration, by PostgreSQL when the connection drops.
        await using var lockConnection = await dataSource.OpenConnectionAsync(cancellationToken);
        await ExecuteAsync(lockConnection, "SELECT pg_advisory_lock(hashtext('finetuneplatform:migrate'))", cancellationToken);
        try
        {
            await context.Database.MigrateAsync(cancellationToken);
        }
        finally
        {
            await ExecuteAsync(lockConnection, "SELECT pg_advisory_unlock(hashtext('finetuneplatform:migrate'))", CancellationToken.None);
        }

        LogMigrated(logger, typeof(TContext).Name);
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    /// <summary>
    /// Two replicas can both see the database missing and both create it; the loser's "already exists" (42P04, or a
    /// unique violation in pg_database when the two commit together) means the database is there, which is all we need.
    /// </summary>
    private static async Task CreateDatabaseIfMissingAsync(TContext context, CancellationToken cancellationToken)
    {
        var creator = context.GetService<IRelationalDatabaseCreator>();
        if (await creator.ExistsAsync(cancellationToken))
        {
            return;
        }

        try
        {
            await creator.CreateAsync(cancellationToken);
        }
        catch (PostgresException ex) when (ex.SqlState is PostgresErrorCodes.DuplicateDatabase or PostgresErrorCodes.UniqueViolation)
        {
        }
    }

    private static async Task ExecuteAsync(NpgsqlConnection connection, string sql, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(sql, connection);
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    [LoggerMessage(LogLevel.Information, "Database for {Context} is migrated")]
    private static partial void LogMigrated(ILogger logger, string context);
}
