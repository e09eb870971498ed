using System.Diagnostics;

namespace FineTunePlatform.EndToEnd.Tests;

/// <summary>Runs a built service as its own OS process, the way ./run.sh does, to observe start-up failures.</summary>
internal static class ServiceProcess
{
    public static string AssemblyPath(string project) =>
        // Referenced service assemblies are copied next to the test assembly with their runtimeconfig.
        Path.Combine(AppContext.BaseDirectory, $"{project}.dll");

    public static async Task<(int ExitCode, string Output)> RunUntilExitAsync(string project, IDictionary<string, string> environment, TimeSpan timeout)
    {
        var start = new ProcessStartInfo("dotnet", [AssemblyPath(project), "--urls", "http://127.0.0.1:0"])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = AppContext.BaseDirectory,
        };
        // Only what the test says: nothing of the test runner's own ConnectionStrings__* leaks in.
        foreach (var key in start.Environment.Keys.Where(key => key.StartsWith("ConnectionStrings__", StringComparison.Ordinal) || key.StartsWith("Internal__", StringComparison.Ordinal)).ToList())
        {
            start.Environment.Remove(key);
        }

        foreach (var (key, value) in environment)
        {
            start.Environment[key] = value;
        }

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
}
