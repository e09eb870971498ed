using System.Net.Sockets;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Npgsql;
using RabbitMQ.Client;

namespace FineTunePlatform.AppHost;

/// <summary>
/// PostgreSQL, Redis and RabbitMQ as executables run from the locally installed binaries, for machines without a
/// container runtime (ours, and any laptop without Docker). Each runs the same start script eng/servers.sh uses
/// (eng/servers/*.sh: loopback only, a private data directory, a clean stop on SIGTERM), on a port DCP allocates and
/// hands to the script; DCP does not proxy them, so a health check that connects is talking to the server itself.
/// Each has a health check that does what its clients will do (a query, a PING, an AMQP login), so WaitFor on it
/// means "ready", not "listening".
/// </summary>
internal static class LocalServers
{
    public static IResourceBuilder<LocalPostgresResource> AddLocalPostgres(
        this IDistributedApplicationBuilder builder, string name, string scripts, string dataDirectory, IResourceBuilder<ParameterResource> password)
    {
        var resource = new LocalPostgresResource(name, Path.Combine(scripts, "postgres.sh"), scripts, password.Resource);
        return builder.AddResource(resource)
            .WithEndpoint(name: LocalPostgresResource.EndpointName, scheme: "tcp", isProxied: false)
            .WithArgs(context =>
            {
                context.Args.Add(Path.Combine(dataDirectory, name));
                context.Args.Add(resource.PrimaryEndpoint.Property(EndpointProperty.TargetPort));
            })
            .WithEnvironment("PG_PASSWORD", password);
    }

    /// <summary>
    /// Ready once the server answers a query and the services' databases and roles are bootstrapped
    /// (<see cref="ServiceDatabaseBootstrap"/>, as the superuser whose connection string the server resource has), so
    /// a service that waits for the server finds its role and database. The bootstrap runs until it has succeeded once
    /// per AppHost run; later checks only query.
    /// </summary>
    public static IResourceBuilder<T> WithServiceDatabases<T>(
        this IResourceBuilder<T> server, IEnumerable<(ServiceDatabase Database, IResourceBuilder<ParameterResource> Password)> databases)
        where T : IResourceWithEndpoints, IResourceWithConnectionString
    {
        var roles = databases.ToList();
        var bootstrapped = false;
        return server.WithReadyCheck(async cancellationToken =>
        {
            var superuser = await server.Resource.ConnectionStringExpression.GetValueAsync(cancellationToken)
                ?? throw new InvalidOperationException($"{server.Resource.Name} has no connection string yet");
            await using (var connection = new NpgsqlConnection(superuser))
            {
                await connection.OpenAsync(cancellationToken);
                await using var command = new NpgsqlCommand("SELECT 1", connection);
                await command.ExecuteScalarAsync(cancellationToken);
            }

            if (!bootstrapped)
            {
                var passwords = new List<(ServiceDatabase, string)>();
                foreach (var (database, password) in roles)
                {
                    passwords.Add((database, await password.Resource.GetValueAsync(cancellationToken) ?? throw new InvalidOperationException($"{password.Resource.Name} has no value")));
                }

                await ServiceDatabaseBootstrap.ApplyAsync(superuser, passwords, cancellationToken);
                bootstrapped = true;
            }
        });
    }

    public static IResourceBuilder<LocalRedisResource> AddLocalRedis(this IDistributedApplicationBuilder builder, string name, string scripts, string dataDirectory)
    {
        var resource = new LocalRedisResource(name, Path.Combine(scripts, "redis.sh"), scripts);
        return builder.AddResource(resource)
            .WithEndpoint(name: LocalRedisResource.EndpointName, scheme: "tcp", isProxied: false)
            .WithArgs(context =>
            {
                context.Args.Add(Path.Combine(dataDirectory, name));
                context.Args.Add(resource.PrimaryEndpoint.Property(EndpointProperty.TargetPort));
            })
            .WithReadyCheck(async cancellationToken =>
            {
                using var client = new TcpClient();
                await client.ConnectAsync("127.0.0.1", resource.PrimaryEndpoint.Port, cancellationToken);
                var stream = client.GetStream();
                await stream.WriteAsync("PING\r\n"u8.ToArray(), cancellationToken);
                var answer = new byte[5];
                await stream.ReadExactlyAsync(answer, cancellationToken);
                if (!answer.AsSpan().SequenceEqual("+PONG"u8))
                {
                    throw new InvalidOperationException("Redis did not answer PING with PONG");
                }
            });
    }

    /// <summary>
    /// The broker with the platform's own users (eng/servers/rabbitmq.sh makes them at every start, and no guest):
    /// one per service with the permissions eng/servers/rabbitmq-permissions.tsv gives it on the platform's virtual
    /// host and no management access (added by the caller, <see cref="LocalRabbitMQResource.ServiceConnectionString"/>),
    /// and the operators' administrator for the management UI, whose password services never receive.
    /// </summary>
    public static IResourceBuilder<LocalRabbitMQResource> AddLocalRabbitMQ(
        this IDistributedApplicationBuilder builder, string name, string scripts, string dataDirectory, IResourceBuilder<ParameterResource> adminPassword)
    {
        var resource = new LocalRabbitMQResource(name, Path.Combine(scripts, "rabbitmq.sh"), scripts, adminPassword.Resource);
        return builder.AddResource(resource)
            .WithEndpoint(name: LocalRabbitMQResource.EndpointName, scheme: "tcp", isProxied: false)
            .WithHttpEndpoint(name: LocalRabbitMQResource.ManagementEndpointName, isProxied: false)
            .WithUrlForEndpoint(LocalRabbitMQResource.ManagementEndpointName, url => url.DisplayText = $"Management UI ({LocalRabbitMQResource.AdminUser})")
            .WithEnvironment("RABBITMQ_VHOST", LocalRabbitMQResource.VirtualHost)
            .WithEnvironment("RABBITMQ_ADMIN_USER", LocalRabbitMQResource.AdminUser)
            .WithEnvironment("RABBITMQ_ADMIN_PASSWORD", adminPassword)
            .WithArgs(context =>
            {
                context.Args.Add(Path.Combine(dataDirectory, name));
                context.Args.Add(resource.PrimaryEndpoint.Property(EndpointProperty.TargetPort));
                context.Args.Add(resource.GetEndpoint(LocalRabbitMQResource.ManagementEndpointName).Property(EndpointProperty.TargetPort));
            })
            .WithReadyCheck(async cancellationToken =>
            {
                var factory = new ConnectionFactory { Uri = new Uri(await resource.ConnectionStringExpression.GetValueAsync(cancellationToken) ?? "") };
                await using var connection = await factory.CreateConnectionAsync(cancellationToken);
            });
    }

    /// <summary>A health check named after the resource that passes when <paramref name="probe"/> completes.</summary>
    internal static IResourceBuilder<T> WithReadyCheck<T>(this IResourceBuilder<T> server, Func<CancellationToken, Task> probe)
        where T : IResourceWithEndpoints
    {
        var key = $"{server.Resource.Name}-ready";
        server.ApplicationBuilder.Services.AddHealthChecks().AddAsyncCheck(key, async cancellationToken =>
        {
            try
            {
                using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
                timeout.CancelAfter(TimeSpan.FromSeconds(5));
                await probe(timeout.Token);
                return HealthCheckResult.Healthy();
            }
            catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
            {
                return HealthCheckResult.Unhealthy(ex.Message);
            }
        });
        return server.WithHealthCheck(key);
    }
}

/// <summary>PostgreSQL from eng/servers/postgres.sh; its connection string is the superuser's (the bootstrap's), and each database a connection string of its owning role.</summary>
internal sealed class LocalPostgresResource(string name, string command, string workingDirectory, ParameterResource password)
    : ExecutableResource(name, command, workingDirectory), IResourceWithConnectionString
{
    public const string EndpointName = "tcp";

    public EndpointReference PrimaryEndpoint => field ??= new EndpointReference(this, EndpointName);

    public ReferenceExpression ConnectionStringExpression => ReferenceExpression.Create(
        $"Host=127.0.0.1;Port={PrimaryEndpoint.Property(EndpointProperty.Port)};Username=postgres;Password={password}");

    /// <summary>The connection string of one service's database as its own role.</summary>
    public ReferenceExpression DatabaseConnectionString(ServiceDatabase database, IResourceBuilder<ParameterResource> rolePassword) =>
        ReferenceExpression.Create(
            $"Host=127.0.0.1;Port={PrimaryEndpoint.Property(EndpointProperty.Port)};Username={database.Role};Password={rolePassword.Resource};Database={database.Name}");
}

/// <summary>Redis from eng/servers/redis.sh.</summary>
internal sealed class LocalRedisResource(string name, string command, string workingDirectory)
    : ExecutableResource(name, command, workingDirectory), IResourceWithConnectionString
{
    public const string EndpointName = "tcp";

    public EndpointReference PrimaryEndpoint => field ??= new EndpointReference(this, EndpointName);

    public ReferenceExpression ConnectionStringExpression =>
        ReferenceExpression.Create($"127.0.0.1:{PrimaryEndpoint.Property(EndpointProperty.Port)}");
}

/// <summary>
/// RabbitMQ (with the management plugin) from eng/servers/rabbitmq.sh. Its own connection string is the operators'
/// administrator's (the readiness check logs in with it); services get their own user's.
/// </summary>
internal sealed class LocalRabbitMQResource(string name, string command, string workingDirectory, ParameterResource adminPassword)
    : ExecutableResource(name, command, workingDirectory), IResourceWithConnectionString
{
    public const string EndpointName = "amqp";
    public const string ManagementEndpointName = "management";

    // The same names eng/servers.sh gives the broker of the tests.
    public const string VirtualHost = "finetuneplatform";
    public const string ServiceUser = "finetuneplatform";
    public const string AdminUser = "finetuneplatform-admin";

    public EndpointReference PrimaryEndpoint => field ??= new EndpointReference(this, EndpointName);

    public ReferenceExpression ConnectionStringExpression =>
        ReferenceExpression.Create($"amqp://{AdminUser}:{adminPassword}@127.0.0.1:{PrimaryEndpoint.Property(EndpointProperty.Port)}/{VirtualHost}");

    /// <summary>The broker as one service connects to it: its own user (finetuneplatform-SERVICE) on the platform's virtual host.</summary>
    public ReferenceExpression ServiceConnectionString(string service, IResourceBuilder<ParameterResource> password) =>
        ReferenceExpression.Create($"amqp://{ServiceUser}-{service}:{password.Resource}@127.0.0.1:{PrimaryEndpoint.Property(EndpointProperty.Port)}/{VirtualHost}");
}
