using System.Globalization;
using System.Net;

namespace FineTunePlatform.Testing;

/// <summary>
/// Watches the sockets of a set of processes (and their descendants) while it runs and records every TCP or UDP peer
/// that is not loopback: a self-hosted platform must not phone home (MassTransit's usage telemetry did). Sockets are
/// matched to processes by inode (/proc/PID/fd/* → socket:[inode]) and their peers read from /proc/net/{tcp,tcp6,
/// udp,udp6}, every <see cref="Interval"/>, so a connection of a few hundred milliseconds is seen too; a DNS lookup of
/// an outside name shows as a UDP peer on port 53 of the resolver.
/// </summary>
public sealed class OutboundConnections : IAsyncDisposable
{
    public static readonly TimeSpan Interval = TimeSpan.FromMilliseconds(100);

    private static readonly string[] Tables = ["/proc/net/tcp", "/proc/net/tcp6", "/proc/net/udp", "/proc/net/udp6"];

    private readonly IReadOnlySet<int> _roots;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _watching;
    private readonly HashSet<string> _outside = [];
    private readonly HashSet<string> _seen = [];

    public OutboundConnections(IEnumerable<int> processIds)
    {
        _roots = processIds.ToHashSet();
        _watching = Task.Run(WatchAsync);
    }

    /// <summary>How many times the tables were read: a watcher that never looked proves nothing.</summary>
    public int Samples { get; private set; }

    /// <summary>How many distinct sockets of the watched processes were seen, loopback included.</summary>
    public int SocketsSeen => _seen.Count;

    /// <summary>Stops watching and returns "process (pid) → address:port" for every non-loopback peer seen.</summary>
    public async Task<IReadOnlyCollection<string>> StopAsync()
    {
        await _stop.CancelAsync();
        await _watching;
        return _outside;
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync();
        _stop.Dispose();
    }

    private async Task WatchAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            Sample();
            Samples++;
            try
            {
                await Task.Delay(Interval, _stop.Token);
            }
            catch (OperationCanceledException)
            {
                break;
            }
        }

        Sample();
    }

    private void Sample()
    {
        var owners = SocketOwners();
        foreach (var table in Tables)
        {
            foreach (var line in ReadLines(table).Skip(1))
            {
                var columns = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                if (columns.Length < 10 || !owners.TryGetValue(columns[9], out var owner))
                {
                    continue;
                }

                _seen.Add($"{table}:{columns[9]}");
                var (address, port) = Parse(columns[2]);
                if (port != 0 && !IPAddress.IsLoopback(address) && !address.Equals(IPAddress.Any) && !address.Equals(IPAddress.IPv6Any))
                {
                    _outside.Add($"{owner} → {address}:{port} ({Path.GetFileName(table)})");
                }
            }
        }
    }

    /// <summary>socket inode → "name (pid)" for the watched processes and every process descended from one.</summary>
    private Dictionary<string, string> SocketOwners()
    {
        var parents = new Dictionary<int, int>();
        var names = new Dictionary<int, string>();
        foreach (var directory in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(directory), NumberStyles.None, CultureInfo.InvariantCulture, out var pid))
            {
                continue;
            }

            // /proc/PID/stat: "pid (name) state ppid ..."; the name may hold spaces and parentheses.
            var stat = ReadLines(Path.Combine(directory, "stat")).FirstOrDefault();
            var close = stat?.LastIndexOf(')') ?? -1;
            if (stat is null || close < 0)
            {
                continue;
            }

            var fields = stat[(close + 2)..].Split(' ');
            parents[pid] = int.Parse(fields[1], CultureInfo.InvariantCulture);
            names[pid] = stat[(stat.IndexOf('(') + 1)..close];
        }

        var owners = new Dictionary<string, string>();
        foreach (var pid in parents.Keys.Where(pid => IsWatched(pid, parents)))
        {
            try
            {
                foreach (var fd in Directory.EnumerateFileSystemEntries($"/proc/{pid}/fd"))
                {
                    if (new FileInfo(fd).LinkTarget is { } target && target.StartsWith("socket:[", StringComparison.Ordinal))
                    {
                        owners.TryAdd(target["socket:[".Length..^1], $"{names[pid]} ({pid})");
                    }
                }
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                // The process ended while we looked.
            }
        }

        return owners;
    }

    private bool IsWatched(int pid, Dictionary<int, int> parents)
    {
        for (var depth = 0; depth < 64 && pid > 1; depth++)
        {
            if (_roots.Contains(pid))
            {
                return true;
            }

            if (!parents.TryGetValue(pid, out pid))
            {
                return false;
            }
        }

        return false;
    }

    /// <summary>"0100007F:1F90" (IPv4) or 32 hex digits (IPv6), each 32-bit word in host (little-endian) order.</summary>
    private static (IPAddress Address, int Port) Parse(string hex)
    {
        var colon = hex.IndexOf(':');
        var port = int.Parse(hex[(colon + 1)..], NumberStyles.HexNumber, CultureInfo.InvariantCulture);
        var digits = hex[..colon];
        var bytes = new byte[digits.Length / 2];
        for (var word = 0; word < bytes.Length / 4; word++)
        {
            var value = uint.Parse(digits.AsSpan(word * 8, 8), NumberStyles.HexNumber, CultureInfo.InvariantCulture);
            BitConverter.TryWriteBytes(bytes.AsSpan(word * 4, 4), value);
        }

        var address = new IPAddress(bytes);
        return (address.IsIPv4MappedToIPv6 ? address.MapToIPv4() : address, port);
    }

    private static IEnumerable<string> ReadLines(string path)
    {
        try
        {
            return File.ReadAllLines(path);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return [];
        }
    }
}
