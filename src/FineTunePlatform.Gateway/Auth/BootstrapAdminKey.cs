using FineTunePlatform.Gateway.Infrastructure;
using Microsoft.EntityFrameworkCore;

namespace FineTunePlatform.Gateway.Auth;

/// <summary>
/// Ensures the platform-admin key named by `Gateway:BootstrapAdminKey` exists (run.sh generates one and prints it),
/// so a fresh platform can be administered without touching the database. Registered after the migration.
/// </summary>
public sealed partial class BootstrapAdminKey(IServiceProvider serviceProvider, IConfiguration configuration, TimeProvider time, ILogger<BootstrapAdminKey> logger) : IHostedService
{
    public const string ConfigurationKey = "Gateway:BootstrapAdminKey";

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        var plaintext = configuration[ConfigurationKey];
        if (string.IsNullOrWhiteSpace(plaintext))
        {
            return;
        }

        // Any long random string will do (the AppHost generates one without our sk-ft- prefix).
        if (plaintext.Length < 32)
        {
            throw new InvalidOperationException($"'{ConfigurationKey}' must be at least 32 characters long.");
        }

        await using var scope = serviceProvider.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<GatewayDbContext>();
        var now = time.GetUtcNow();
        await db.Database.ExecuteSqlInterpolatedAsync(
            $"INSERT INTO projects (\"Id\", \"Name\", \"CreatedAt\") VALUES ({Project.PlatformProjectId}, {"platform"}, {now}) ON CONFLICT DO NOTHING",
            cancellationToken);

        var hash = ApiKeyHasher.Hash(plaintext);
        if (!await db.ApiKeys.AnyAsync(key => key.Hash == hash, cancellationToken))
        {
            db.ApiKeys.Add(ApiKey.FromPlaintext(plaintext, Project.PlatformProjectId, "bootstrap", Roles.Admin, now, expiresAt: null));
            try
            {
                await db.SaveChangesAsync(cancellationToken);
            }
            catch (DbUpdateException ex) when (ex.InnerException is Npgsql.PostgresException { SqlState: Npgsql.PostgresErrorCodes.UniqueViolation })
            {
                // Another gateway replica inserted it first.
                return;
            }

            LogCreated(logger);
        }
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    [LoggerMessage(LogLevel.Information, "Bootstrap platform-admin key registered")]
    private static partial void LogCreated(ILogger logger);
}
