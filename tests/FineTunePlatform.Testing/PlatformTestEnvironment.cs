namespace FineTunePlatform.Testing;

/// <summary>
/// What a group of in-process services shares in a test: one RabbitMQ virtual host, one internal token, and a
/// database of its own per service. Produces each service's settings under the names the services read
/// (ConnectionStrings:*, services:{name}:http:0, Internal:Token), exactly as ./run.sh and the AppHost provide them.
/// </summary>
public sealed class PlatformTestEnvironment
{
    private PlatformTestEnvironment(string rabbitMq, string namePrefix)
    {
        RabbitMq = rabbitMq;
        NamePrefix = namePrefix;
    }

    public string RabbitMq { get; }

    public string NamePrefix { get; }

    public string InternalToken { get; } = "test-internal-token-" + Guid.NewGuid().ToString("N");

    public static async Task<PlatformTestEnvironment> CreateAsync(string namePrefix) =>
        new(await PlatformServers.NewVirtualHostAsync(namePrefix), namePrefix);

    /// <summary>
    /// Settings for one service, no more than it uses. `database` is its connection name (datasetsdb, gatewaydb, ...)
    /// or null for a service without one (trainer workers: no database and no Redis); `peers` are the services it
    /// calls, by discovery name.
    /// </summary>
    public Dictionary<string, string?> SettingsFor(string? database, IEnumerable<KeyValuePair<string, IServiceEndpoints>>? peers = null)
    {
        var settings = new Dictionary<string, string?>
        {
            ["ConnectionStrings:rabbitmq"] = RabbitMq,
            ["Internal:Token"] = InternalToken,
        };
        if (database is not null)
        {
            settings[$"ConnectionStrings:{database}"] = PlatformServers.NewDatabase($"{NamePrefix}_{database}");
        }

        // Only what the service uses, as under the AppHost: Redis is the gateway's (rate limits) alone.
        if (database == "gatewaydb")
        {
            settings["ConnectionStrings:redis"] = PlatformServers.Redis;
        }

        foreach (var (name, endpoints) in peers ?? [])
        {
            settings[$"services:{name}:http:0"] = endpoints.BaseAddress.ToString().TrimEnd('/');
            settings[$"services:{name}:grpc:0"] = endpoints.GrpcAddress.ToString().TrimEnd('/');
        }

        return settings;
    }
}
