using Microsoft.Extensions.Configuration;

namespace FineTunePlatform.AppHost;

/// <summary>
/// Gives every endpoint a loopback port reserved for this AppHost before DCP starts anything, so that two platforms and
/// a test run started at the same moment never pick the same port. DCP on its own picks a free port and the process
/// binds it seconds later; between the two, another process of ours could pick it too (DCP's picks have landed in the
/// range the test suite uses). The reservation is the protocol every FineTunePlatform process follows
/// (eng/servers/lib.sh reserve_port, the test suite's LoopbackPorts): an exclusive flock(2) on
/// /tmp/finetuneplatform-ports/PORT.lock, which .NET takes for a FileStream opened with FileShare.None, held for this
/// process's lifetime. Replicated resources keep DCP's per-replica target ports.
/// The gateway's port is stable by default (<see cref="DefaultGatewayPort"/>), so an exported FINETUNE_BASE_URL
/// survives restarts; `Platform:GatewayPort` chooses another (0: any free port). When the default is taken (another
/// platform on this machine), the gateway gets a reserved free port and a line on stderr says so.
/// </summary>
internal static class LoopbackPortReservations
{
    /// <summary>Below every Linux ephemeral range (32768+) and the range the tests reserve from (15000+).</summary>
    public const int DefaultGatewayPort = 8480;

    private static readonly List<FileStream> Held = [];

    public static void ReserveLoopbackPorts(this IDistributedApplicationBuilder builder, IResourceBuilder<ProjectResource> gateway)
    {
        var lockDirectory = Environment.GetEnvironmentVariable("FTP_PORT_LOCKS") is { Length: > 0 } configured ? configured : "/tmp/finetuneplatform-ports";
        var gatewayPort = GatewayPort(builder.Configuration, lockDirectory);
        foreach (var resource in builder.Resources.OfType<IResourceWithEndpoints>())
        {
            var replicated = resource.TryGetLastAnnotation<ReplicaAnnotation>(out var replicas) && replicas.Replicas > 1;
            foreach (var endpoint in resource.Annotations.OfType<EndpointAnnotation>())
            {
                var fixedGateway = ReferenceEquals(resource, gateway.Resource) && endpoint.Name == "http" && gatewayPort is not null;
                endpoint.Port = fixedGateway ? gatewayPort : Reserve(lockDirectory);
                if (!endpoint.IsProxied)
                {
                    // Unproxied: the process itself listens on the port others are given.
                    endpoint.TargetPort = endpoint.Port;
                }
                else if (!replicated)
                {
                    endpoint.TargetPort = Reserve(lockDirectory);
                }
            }
        }
    }

    /// <summary>The configured gateway port as given; else the default if it is free and unreserved; else null (any).</summary>
    private static int? GatewayPort(IConfiguration configuration, string lockDirectory)
    {
        if (configuration.GetValue<int?>("Platform:GatewayPort") is { } configured)
        {
            return configured == 0 ? null : configured;
        }

        if (IsFree(DefaultGatewayPort) && TryHold(lockDirectory, DefaultGatewayPort))
        {
            return DefaultGatewayPort;
        }

        Console.Error.WriteLine($"FineTunePlatform: port {DefaultGatewayPort} is taken (another platform?); the gateway gets another free port this time (Platform:GatewayPort sets one)");
        return null;
    }

    private static bool TryHold(string lockDirectory, int port)
    {
        Directory.CreateDirectory(lockDirectory);
        try
        {
            Held.Add(new FileStream(Path.Combine(lockDirectory, $"{port}.lock"), FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None));
            return true;
        }
        catch (IOException)
        {
            return false;
        }
    }

    private static int Reserve(string lockDirectory)
    {
        var high = EphemeralRangeStart() - 1;
        for (var attempt = 0; attempt < 1000; attempt++)
        {
            var port = Random.Shared.Next(15000, high);
            if (IsFree(port) && TryHold(lockDirectory, port))
            {
                return port;
            }
        }

        throw new InvalidOperationException($"No free, unreserved loopback port in 15000-{high}.");
    }

    private static bool IsFree(int port)
    {
        try
        {
            using var listener = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, port);
            listener.Start();
            return true;
        }
        catch (System.Net.Sockets.SocketException)
        {
            return false;
        }
    }

    private static int EphemeralRangeStart() =>
        File.Exists("/proc/sys/net/ipv4/ip_local_port_range")
            && int.TryParse(File.ReadAllText("/proc/sys/net/ipv4/ip_local_port_range").Split((char[])['\t', ' '], StringSplitOptions.RemoveEmptyEntries)[0], System.Globalization.CultureInfo.InvariantCulture, out var low)
            ? low
            : 32768;
}
