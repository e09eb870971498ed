using System.Diagnostics;
using System.Net.Sockets;
using System.Text;
using FineTunePlatform.Testing;
using Npgsql;

namespace FineTunePlatform.EndToEnd.Tests;

/// <summary>
/// eng/servers.sh and the per-server scripts beside it, which ./test.sh, ScratchPostgres and the AppHost rely on:
/// starts side by side never collide, each start gets servers of its own, and nothing is left running afterwards,
/// not even when a start fails half-way.
/// </summary>
public sealed class PrivateServersTests
{
    [Fact]
    public async Task Three_sets_of_servers_started_at_once_come_up_on_ports_of_their_own_three_rounds_running()
    {
        for (var round = 1; round <= 3; round++)
        {
            var marker = Guid.NewGuid().ToString("N");
            var directories = Enumerable.Range(1, 3).Select(_ => ScratchDirectory()).ToArray();
            try
            {
                var starts = await Task.WhenAll(directories.Select(directory => ServersAsync(marker, "start", directory)));
                foreach (var (start, index) in starts.Select((start, index) => (start, index)))
                {
                    Assert.True(start.ExitCode == 0, $"round {round}, set {index + 1}: eng/servers.sh start failed:\n{start.Output}");
                }

                var sets = directories.Select(ServerSet.Read).ToArray();
                var ports = sets.SelectMany(set => new[] { set.PostgresPort, set.RedisPort, set.RabbitMqPort, set.ManagementPort }).ToList();
                Assert.Equal(ports.Count, ports.Distinct().Count());
                foreach (var set in sets)
                {
                    await set.AssertEachServerAnswersAsync();
                }
            }
            finally
            {
                await Task.WhenAll(directories.Select(directory => ServersAsync(marker, "stop", directory)));
            }

            await AssertNothingLeftAsync(marker);
            foreach (var directory in directories)
            {
                await ServersAsync(marker, "wipe", directory);
            }
        }
    }

    [Fact]
    public async Task A_start_that_fails_half_way_says_why_and_leaves_nothing_running()
    {
        var marker = Guid.NewGuid().ToString("N");
        var directory = ScratchDirectory();
        // A PostgreSQL whose initdb fails, beside a real Redis and RabbitMQ that start and must then be stopped.
        var brokenPostgres = Path.Combine(directory, "broken-postgres-bin");
        Directory.CreateDirectory(brokenPostgres);
        foreach (var tool in new[] { "postgres", "initdb" })
        {
            var path = Path.Combine(brokenPostgres, tool);
            await File.WriteAllTextAsync(path, "#!/bin/sh\necho \"initdb: error: the disk is on fire\" >&2\nexit 1\n");
            if (!OperatingSystem.IsWindows())
            {
                File.SetUnixFileMode(path, (UnixFileMode)Convert.ToInt32("755", 8));
            }
        }

        try
        {
            var start = await ServersAsync(marker, "start", directory, ("PG_BIN", brokenPostgres));

            Assert.NotEqual(0, start.ExitCode);
            Assert.Contains("the disk is on fire", start.Output, StringComparison.Ordinal);
            Assert.Contains("postgres did not start", start.Output, StringComparison.Ordinal);
            Assert.False(File.Exists(Path.Combine(directory, "servers.env")), "a failed start wrote servers.env");
            await AssertNothingLeftAsync(marker);
        }
        finally
        {
            await ServersAsync(marker, "wipe", directory);
        }
    }

    private static string ScratchDirectory() =>
        Path.Combine(RepositoryRoot.Path, ".test-run", "servers-test-" + Guid.NewGuid().ToString("N")[..8]);

    /// <summary>Runs eng/servers.sh with a marker in its environment, which every process it starts inherits.</summary>
    private static async Task<(int ExitCode, string Output)> ServersAsync(string marker, string command, string directory, params (string Name, string Value)[] environment)
    {
        var start = new ProcessStartInfo(Path.Combine(RepositoryRoot.Path, "eng", "servers.sh"), [command, directory])
        {
            RedirectStandardError = true,
            RedirectStandardOutput = true,
        };
        start.Environment["FTP_SERVERS_FAST"] = "1";
        start.Environment["FTP_SERVERS_TEST_MARKER"] = marker;
        foreach (var (name, value) in environment)
        {
            start.Environment[name] = value;
        }

        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(4));
        await process.WaitForExitAsync(timeout.Token);
        return (process.ExitCode, await stdout + await stderr);
    }

    /// <summary>No live process carries the marker: the servers, their scripts, epmd and whatever else they started.</summary>
    private static async Task AssertNothingLeftAsync(string marker)
    {
        var deadline = DateTime.UtcNow.AddSeconds(10);
        List<string> left;
        do
        {
            left = ProcessesWithMarker(marker);
            if (left.Count == 0)
            {
                return;
            }

            await Task.Delay(200);
        }
        while (DateTime.UtcNow < deadline);

        Assert.Fail($"still running after stop: {string.Join("; ", left)}");
    }

    private static List<string> ProcessesWithMarker(string marker)
    {
        var needle = Encoding.ASCII.GetBytes($"FTP_SERVERS_TEST_MARKER={marker}\0");
        var found = new List<string>();
        foreach (var entry in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(entry), out var pid))
            {
                continue;
            }

            try
            {
                var status = File.ReadAllText(Path.Combine(entry, "stat"));
                // The state follows the command name in parentheses; a zombie (Z) has exited already.
                if (status[(status.LastIndexOf(')') + 2)..].StartsWith('Z'))
                {
                    continue;
                }

                if (File.ReadAllBytes(Path.Combine(entry, "environ")).AsSpan().IndexOf(needle) >= 0)
                {
                    found.Add($"{pid} {File.ReadAllText(Path.Combine(entry, "cmdline")).Replace('\0', ' ').Trim()}");
                }
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                // Exited while we looked.
            }
        }

        return found;
    }

    private sealed record ServerSet(string Postgres, int PostgresPort, int RedisPort, int RabbitMqPort, int ManagementPort)
    {
        public static ServerSet Read(string directory)
        {
            var settings = File.ReadAllLines(Path.Combine(directory, "servers.env"))
                .Where(line => line.StartsWith("export ", StringComparison.Ordinal))
                .Select(line => line["export ".Length..].Split('=', 2))
                .ToDictionary(pair => pair[0], pair => pair[1].Trim('\''));
            var postgres = settings["FTP_POSTGRES_SERVER"];
            return new ServerSet(
                postgres,
                new NpgsqlConnectionStringBuilder(postgres).Port,
                int.Parse(settings["ConnectionStrings__redis"].Split(':')[1], System.Globalization.CultureInfo.InvariantCulture),
                new Uri(settings["ConnectionStrings__rabbitmq"]).Port,
                new Uri(settings["FTP_RABBITMQ_MANAGEMENT"]).Port);
        }

        public async Task AssertEachServerAnswersAsync()
        {
            await using (var connection = new NpgsqlConnection(Postgres))
            {
                await connection.OpenAsync();
                await using var command = new NpgsqlCommand("SELECT 1", connection);
                Assert.Equal(1, await command.ExecuteScalarAsync());
            }

            Assert.StartsWith("+PONG", Encoding.ASCII.GetString(await ExchangeAsync(RedisPort, "PING\r\n"u8.ToArray(), 7)), StringComparison.Ordinal);
            // AMQP 0-9-1: the protocol header is answered by a Connection.Start method frame (frame type 1).
            Assert.Equal(1, (await ExchangeAsync(RabbitMqPort, "AMQP\0\0\u0009\u0001"u8.ToArray(), 1))[0]);
        }

        private static async Task<byte[]> ExchangeAsync(int port, byte[] request, int length)
        {
            using var client = new TcpClient();
            await client.ConnectAsync("127.0.0.1", port);
            var stream = client.GetStream();
            await stream.WriteAsync(request);
            var answer = new byte[length];
            await stream.ReadExactlyAsync(answer);
            return answer;
        }
    }
}
