using System.Diagnostics;
using System.Reflection;
using System.Text.Json;

namespace FineTunePlatform.AppHost;

/// <summary>
/// What a service references (its connection string, under `ConnectionName` when that differs from the resource's
/// name) and what it waits for (the server being healthy).
/// </summary>
internal sealed record PlatformServer(IResourceBuilder<IResourceWithConnectionString> Connection, IResourceBuilder<IResource> Server, string? ConnectionName = null);

/// <summary>
/// The servers every service needs: PostgreSQL with one database per service, Redis and RabbitMQ. As containers where
/// a container runtime answers, else as executables from the local binaries (<see cref="LocalServers"/>). Chosen
/// before the model is built, because a container resource without a runtime never starts and never fails either
/// (DCP reports "Runtime unhealthy" and waits); `Platform:Servers` (containers | executables) overrides the choice.
/// `RabbitMqFor(service)` is the broker as that service connects to it (its ConnectionStrings:rabbitmq): its own
/// user where the servers are executables, the container's one user otherwise.
/// </summary>
internal sealed record PlatformServers(
    PlatformServer DatasetsDb,
    PlatformServer TrainingDb,
    PlatformServer EvaluationDb,
    PlatformServer GatewayDb,
    PlatformServer Redis,
    Func<string, PlatformServer> RabbitMqFor)
{
    public static PlatformServers Add(IDistributedApplicationBuilder builder)
    {
        var mode = builder.Configuration["Platform:Servers"] switch
        {
            null or "" or "auto" => ContainerRuntimeRunning() ? "containers" : "executables",
            var chosen when chosen is "containers" or "executables" => chosen,
            var other => throw new InvalidOperationException($"Platform:Servers is '{other}'; use containers, executables or auto."),
        };
        Console.WriteLine($"FineTunePlatform: servers run as {mode}");
        return mode == "containers" ? AddContainers(builder) : AddExecutables(builder);
    }

    private static PlatformServers AddContainers(IDistributedApplicationBuilder builder)
    {
        var postgres = builder.AddPostgres("postgres").WithDataVolume("finetuneplatform-postgres");
        var databases = DatabaseRoles(builder);
        postgres.WithServiceDatabases(databases);
        var redis = builder.AddRedis("redis");
        // The image makes its one user (these credentials, no guest) an administrator: container mode has no
        // separate services' user (docs/security.md).
        var rabbitmq = builder.AddRabbitMQ("rabbitmq", RabbitMQUser(builder), RabbitMQPassword(builder)).WithManagementPlugin().WithDataVolume("finetuneplatform-rabbitmq");
        // Not postgres.AddDatabase: its connection string is the superuser's. The bootstrap makes each database.
        var endpoint = postgres.Resource.PrimaryEndpoint;
        PlatformServer Database(string name)
        {
            var (database, password) = databases.Single(entry => entry.Database.Name == name);
            return new PlatformServer(builder.AddConnectionString(name, ReferenceExpression.Create(
                $"Host={endpoint.Property(EndpointProperty.Host)};Port={endpoint.Property(EndpointProperty.Port)};Username={database.Role};Password={password.Resource};Database={name}")), postgres);
        }

        return new PlatformServers(
            Database("datasetsdb"), Database("trainingdb"), Database("evaluationdb"), Database("gatewaydb"),
            new PlatformServer(redis, redis), _ => new PlatformServer(rabbitmq, rabbitmq));
    }

    private static PlatformServers AddExecutables(IDistributedApplicationBuilder builder)
    {
        var repository = Path.GetFullPath(Path.Combine(builder.AppHostDirectory, ".."));
        var scripts = Path.Combine(repository, "eng", "servers");
        var data = Path.GetFullPath(builder.Configuration["Platform:DataDirectory"] is { Length: > 0 } configured
            ? configured
            : Path.Combine(repository, ".run", "data"));
        var password = builder.AddParameter("postgres-password", new GenerateParameterDefault { MinLength = 24, Special = false }, secret: true, persist: true);

        var databases = DatabaseRoles(builder);
        var postgres = builder.AddLocalPostgres("postgres", scripts, data, password).WithServiceDatabases(databases);
        var redis = builder.AddLocalRedis("redis", scripts, data);
        var rabbitmqAdminPassword = builder.AddParameter("rabbitmq-admin-password", new GenerateParameterDefault { MinLength = 24, Special = false }, secret: true, persist: true);
        var rabbitmq = builder.AddLocalRabbitMQ("rabbitmq", scripts, data, rabbitmqAdminPassword);
        // Each service's own broker user (eng/servers/rabbitmq-permissions.tsv), its password generated once like the
        // platform's other secrets; rabbitmq.sh makes the users whose passwords it is given.
        var brokerUsers = new Dictionary<string, PlatformServer>();
        PlatformServer BrokerUser(string service)
        {
            if (!brokerUsers.TryGetValue(service, out var user))
            {
                var password = builder.AddParameter($"rabbitmq-{service}-password", new GenerateParameterDefault { MinLength = 24, Special = false }, secret: true, persist: true);
                rabbitmq.WithEnvironment($"RABBITMQ_PASSWORD_{service.ToUpperInvariant().Replace('-', '_')}", password);
                user = new PlatformServer(builder.AddConnectionString($"rabbitmq-{service}", rabbitmq.Resource.ServiceConnectionString(service, password)), rabbitmq, "rabbitmq");
                brokerUsers[service] = user;
            }

            return user;
        }

        PlatformServer Database(string name)
        {
            var (database, password) = databases.Single(entry => entry.Database.Name == name);
            return new(builder.AddConnectionString(name, postgres.Resource.DatabaseConnectionString(database, password)), postgres);
        }

        return new PlatformServers(
            Database("datasetsdb"), Database("trainingdb"), Database("evaluationdb"), Database("gatewaydb"),
            new PlatformServer(redis, redis), BrokerUser);
    }

    /// <summary>Each service database with its role's password, generated once like the platform's other secrets (./run.sh keeps its own).</summary>
    private static List<(ServiceDatabase Database, IResourceBuilder<ParameterResource> Password)> DatabaseRoles(IDistributedApplicationBuilder builder) =>
        [.. ServiceDatabase.All.Select(database => (database,
            builder.AddParameter(database.PasswordParameter, new GenerateParameterDefault { MinLength = 24, Special = false }, secret: true, persist: true)))];

    /// <summary>The container broker's one user's password (containers only): generated once like the platform's other secrets.</summary>
    private static IResourceBuilder<ParameterResource> RabbitMQPassword(IDistributedApplicationBuilder builder) =>
        builder.AddParameter("rabbitmq-password", new GenerateParameterDefault { MinLength = 24, Special = false }, secret: true, persist: true);

    private static IResourceBuilder<ParameterResource> RabbitMQUser(IDistributedApplicationBuilder builder) =>
        builder.AddParameter("rabbitmq-user", LocalRabbitMQResource.ServiceUser);

    /// <summary>
    /// Asks DCP itself (`dcp info` prints JSON with containers.running in under a second); no public Aspire API says
    /// before the model is built whether a container runtime is up. The path to DCP is in the AppHost assembly's
    /// metadata, written by the Aspire SDK.
    /// </summary>
    private static bool ContainerRuntimeRunning()
    {
        var dcp = Assembly.GetEntryAssembly()?.GetCustomAttributes<AssemblyMetadataAttribute>()
            .FirstOrDefault(attribute => attribute.Key == "dcpclipath")?.Value;
        if (dcp is null || !File.Exists(dcp))
        {
            return false;
        }

        try
        {
            using var process = Process.Start(new ProcessStartInfo(dcp, "info") { RedirectStandardOutput = true, RedirectStandardError = true })!;
            var output = process.StandardOutput.ReadToEndAsync();
            if (!process.WaitForExit(15_000))
            {
                process.Kill();
                return false;
            }

            using var info = JsonDocument.Parse(output.Result);
            return info.RootElement.TryGetProperty("containers", out var containers)
                && containers.TryGetProperty("running", out var running) && running.GetBoolean();
        }
        catch (Exception ex) when (ex is JsonException or System.ComponentModel.Win32Exception or InvalidOperationException)
        {
            return false;
        }
    }
}

internal static class PlatformServerExtensions
{
    /// <summary>The server's connection string (ConnectionStrings__{name}), and start only once the server is healthy.</summary>
    public static IResourceBuilder<ProjectResource> WithServer(this IResourceBuilder<ProjectResource> project, PlatformServer server) =>
        project.WithReference(server.Connection, server.ConnectionName).WaitFor(server.Server);
}
