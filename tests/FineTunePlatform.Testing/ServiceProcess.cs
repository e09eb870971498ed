using System.Diagnostics;

namespace FineTunePlatform.Testing;

/// <summary>
/// Runs a built service as its own OS process, the way ./run.sh does: to observe start-up failures, or to have a
/// process a test can kill -9.
/// </summary>
public static class ServiceProcess
{
    public static string AssemblyPath(string project) =>
        // Referenced service assemblies are copied next to the test assembly with their runtimeconfig.
        Path.Combine(AppContext.BaseDirectory, $"{project}.dll");

    public static async Task<(int ExitCode, string Output)> RunUntilExitAsync(string project, IDictionary<string, string> environment, TimeSpan timeout)
    {
        var start = StartInfo(project, environment, redirect: true);
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            await process.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"{project} was still running after {timeout.TotalSeconds} s; it should have failed fast.");
        }

        return (process.ExitCode, await stdout + await stderr);
    }

    /// <summary>
    /// Starts a service with settings in configuration form (`Training:Worker:Slots`), on free loopback ports, and
    /// returns once its /alive answers. Its output is discarded; dispose (or kill) the process to stop it.
    /// </summary>
    public static async Task<Process> StartAsync(string project, IDictionary<string, string?> settings, TimeSpan timeout)
    {
        var http = $"http://127.0.0.1:{LoopbackPorts.Free()}";
        var environment = settings.Where(pair => pair.Value is not null).ToDictionary(pair => pair.Key.Replace(":", "__", StringComparison.Ordinal), pair => pair.Value!);
        environment["Kestrel__Endpoints__http__Url"] = http;
        environment["Kestrel__Endpoints__grpc__Url"] = $"http://127.0.0.1:{LoopbackPorts.Free()}";
        var process = Process.Start(StartInfo(project, environment, redirect: false))!;
        using var client = new HttpClient { BaseAddress = new Uri(http) };
        var deadline = DateTime.UtcNow + timeout;
        while (DateTime.UtcNow < deadline && !process.HasExited)
        {
            try
            {
                if ((await client.GetAsync("/alive")).IsSuccessStatusCode)
                {
                    return process;
                }
            }
            catch (HttpRequestException)
            {
            }

            await Task.Delay(200);
        }

        process.Kill(entireProcessTree: true);
        throw new TimeoutException($"{project} did not become alive within {timeout.TotalSeconds} s.");
    }

    private static ProcessStartInfo StartInfo(string project, IDictionary<string, string> environment, bool redirect)
    {
        var start = new ProcessStartInfo("dotnet", [AssemblyPath(project)])
        {
            RedirectStandardOutput = redirect,
            RedirectStandardError = redirect,
            WorkingDirectory = AppContext.BaseDirectory,
        };

        // Only what the test says: nothing of the test runner's own ConnectionStrings__*, internal token or server
        // secrets (FTP_POSTGRES_SERVER is the superuser, FTP_RABBITMQ_MANAGEMENT the broker's administrator) leaks in.
        string[] runnerOnly = ["ConnectionStrings__", "Internal__", "Gateway__", "FTP_POSTGRES_SERVER", "FTP_RABBITMQ_MANAGEMENT"];
        foreach (var key in start.Environment.Keys.Where(key => runnerOnly.Any(prefix => key.StartsWith(prefix, StringComparison.Ordinal))).ToList())
        {
            start.Environment.Remove(key);
        }

        foreach (var (key, value) in environment)
        {
            start.Environment[key] = value;
        }

        return start;
    }
}
