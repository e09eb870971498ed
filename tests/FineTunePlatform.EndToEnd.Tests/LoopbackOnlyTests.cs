using System.Diagnostics;
using System.Text.RegularExpressions;
using FineTunePlatform.Testing;

namespace FineTunePlatform.EndToEnd.Tests;

public sealed partial class LoopbackOnlyTests
{
    [Fact]
    public async Task Private_servers_and_services_listen_on_loopback_only()
    {
        var platform = await PlatformTestEnvironment.CreateAsync("loopback");
        await using var gateway = new ServiceHost<Gateway.Grpc.PlatformInfoService>(platform.SettingsFor("gatewaydb"));
        _ = gateway.BaseAddress;

        // Our processes: the servers ./test.sh started (their PID files) and this test process hosting a service.
        var ours = Directory.GetFiles(PlatformServers.ServersDirectory, "*.pid")
            .Select(file => int.Parse(File.ReadAllText(file).Trim(), System.Globalization.CultureInfo.InvariantCulture))
            .Append(Environment.ProcessId)
            .ToHashSet();

        var listeners = await ListeningSocketsAsync();
        var mine = listeners.Where(listener => ours.Contains(listener.Pid)).ToList();

        Assert.Contains(mine, listener => listener.Pid == Environment.ProcessId);
        Assert.True(mine.Count >= 5, $"expected the servers' and the gateway's listeners, saw: {string.Join(", ", mine)}");
        Assert.All(mine, listener => Assert.True(
            listener.Address.StartsWith("127.0.0.1:", StringComparison.Ordinal) || listener.Address.StartsWith("[::1]:", StringComparison.Ordinal),
            $"{listener.Process} (pid {listener.Pid}) listens on {listener.Address}"));
    }

    private sealed record Listener(string Address, string Process, int Pid);

    private static async Task<List<Listener>> ListeningSocketsAsync()
    {
        var start = new ProcessStartInfo("ss", "-Htlnp") { RedirectStandardOutput = true };
        using var process = Process.Start(start)!;
        var output = await process.StandardOutput.ReadToEndAsync();
        await process.WaitForExitAsync();
        var listeners = new List<Listener>();
        foreach (var line in output.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            var columns = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            foreach (Match owner in OwnerPattern().Matches(line))
            {
                listeners.Add(new Listener(columns[3], owner.Groups[1].Value, int.Parse(owner.Groups[2].Value, System.Globalization.CultureInfo.InvariantCulture)));
            }
        }

        return listeners;
    }

    [GeneratedRegex("\\(\"([^\"]+)\",pid=(\\d+)")]
    private static partial Regex OwnerPattern();
}
