using System.Net;
using System.Net.Sockets;

namespace FineTunePlatform.Testing;

public static class LoopbackPorts
{
    /// <summary>
    /// The port reservations of every FineTunePlatform process on the machine (eng/servers/lib.sh's reserve_port uses
    /// the same files): a port is reserved by whoever holds an exclusive flock(2) on its file, which .NET takes for a
    /// FileStream opened with FileShare.None. Held until this process exits.
    /// </summary>
    private static readonly string LockDirectory = Environment.GetEnvironmentVariable("FTP_PORT_LOCKS") is { Length: > 0 } directory
        ? directory
        : "/tmp/finetuneplatform-ports";

    private static readonly HashSet<int> HandedOut = [];
    private static readonly List<FileStream> Reservations = [];

    /// <summary>
    /// A port free on 127.0.0.1 right now and reserved for this process, for a server the test starts next. Picked
    /// below the kernel's ephemeral range: a port from that range (what binding port 0 returns) can be taken in the
    /// meantime by any outgoing connection, and the suite opens thousands (PostgreSQL, RabbitMQ, HTTP). The reservation
    /// keeps the other test processes and server scripts running beside this one from picking the same port between
    /// now and the moment the server binds it. Never the same port twice per process.
    /// </summary>
    public static int Free()
    {
        var (low, high) = (15000, EphemeralRangeStart() - 1);
        for (var attempt = 0; attempt < 1000 && high > low; attempt++)
        {
            var port = Random.Shared.Next(low, high + 1);
            lock (HandedOut)
            {
                if (HandedOut.Contains(port) || !IsFree(port) || !TryReserve(port))
                {
                    continue;
                }

                HandedOut.Add(port);
                return port;
            }
        }

        throw new InvalidOperationException($"No free, unreserved loopback port found in {low}-{high}.");
    }

    private static bool TryReserve(int port)
    {
        try
        {
            if (!Directory.Exists(LockDirectory) && !OperatingSystem.IsWindows())
            {
                // Every user's processes share the reservations: world-writable, sticky.
                Directory.CreateDirectory(LockDirectory);
                File.SetUnixFileMode(LockDirectory, (UnixFileMode)Convert.ToInt32("1777", 8));
            }

            Reservations.Add(new FileStream(Path.Combine(LockDirectory, $"{port}.lock"), FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None));
            return true;
        }
        catch (IOException)
        {
            // Another process holds it.
            return false;
        }
        catch (UnauthorizedAccessException)
        {
            return false;
        }
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
