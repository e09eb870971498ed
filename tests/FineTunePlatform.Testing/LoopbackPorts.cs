using System.Net;
using System.Net.Sockets;

namespace FineTunePlatform.Testing;

public static class LoopbackPorts
{
    private static readonly HashSet<int> HandedOut = [];

    /// <summary>
    /// A port free on 127.0.0.1 right now, for a server the test starts next. Picked below the kernel's ephemeral
    /// range: a port from that range (what binding port 0 returns) can be taken in the meantime by any outgoing
    /// connection, and the suite opens thousands (PostgreSQL, RabbitMQ, HTTP). Never the same port twice per process.
    /// </summary>
    public static int Free()
    {
        var (low, high) = (15000, EphemeralRangeStart() - 1);
        for (var attempt = 0; attempt < 1000 && high > low; attempt++)
        {
            var port = Random.Shared.Next(low, high + 1);
            lock (HandedOut)
            {
                if (HandedOut.Contains(port) || !IsFree(port))
                {
                    continue;
                }

                HandedOut.Add(port);
                return port;
            }
        }

        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    private static bool IsFree(int port)
    {
        try
        {
            using var listener = new TcpListener(IPAddress.Loopback, port);
            listener.Start();
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }

    private static int EphemeralRangeStart()
    {
        try
        {
            return int.Parse(File.ReadAllText("/proc/sys/net/ipv4/ip_local_port_range").Split((char[])['\t', ' '], StringSplitOptions.RemoveEmptyEntries)[0], System.Globalization.CultureInfo.InvariantCulture);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or FormatException)
        {
            return 32768;
        }
    }
}
