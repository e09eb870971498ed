using System.Diagnostics;
using System.Text.RegularExpressions;
using FineTunePlatform.Testing;

namespace FineTunePlatform.Training.Tests;

/// <summary>
/// README.md followed literally against a fresh platform: every ```bash block marked `&lt;!-- doc-test --&gt;` runs,
/// in order, then those of docs/operations.md (which use the README's project), as one script under
/// `set -euo pipefail`, in a directory laid out like the checkout after `./run.sh`
/// (examples/, the built ftune under src/, .run/platform.env written as the AppHost writes it); and the C# sample is
/// examples/ReadmeSample (built with the solution), run with the variables the README defines. While the script runs
/// its jobs, every socket of this process (which hosts the services) and of the servers is watched: a peer outside
/// loopback fails the test.
/// </summary>
public sealed partial class ReadmeTests : IAsyncLifetime
{
    // Four short jobs and four eval runs: about a minute on a quiet machine, several at a load average of 30.
    private static readonly TimeSpan ScriptTimeout = TimeSpan.FromMinutes(10);
    private static readonly string Readme = File.ReadAllText(Path.Combine(RepositoryRoot.Path, "README.md"));
    private static readonly string Operations = File.ReadAllText(Path.Combine(RepositoryRoot.Path, "docs", "operations.md"));
    private static readonly string[] Teams = ["billing", "technical", "shipping", "account"];

    private TrainingPlatform _platform = null!;

    public async Task InitializeAsync() => _platform = await TrainingPlatform.StartAsync("readme", workers: 1);

    public async Task DisposeAsync() => await _platform.DisposeAsync();

    [Fact]
    public async Task The_readmes_shell_blocks_run_as_written_and_the_platform_connects_only_to_loopback()
    {
        var blocks = DocTestBlocks().Matches(Readme).Select(match => match.Groups[1].Value).ToList();
        Assert.True(blocks.Count >= 6, $"expected the README's runnable blocks, found {blocks.Count}");
        var operations = DocTestBlocks().Matches(Operations).Select(match => match.Groups[1].Value).ToList();
        Assert.NotEmpty(operations);
        blocks.AddRange(operations);
        var checkout = Directory.CreateTempSubdirectory("readme-");
        try
        {
            // What ./run.sh leaves for a user: the examples, the built CLI, and .run/platform.env as the AppHost
            // writes it (PlatformEnvironmentFile).
            Directory.CreateSymbolicLink(Path.Combine(checkout.FullName, "examples"), Path.Combine(RepositoryRoot.Path, "examples"));
            Directory.CreateSymbolicLink(Path.Combine(checkout.FullName, "src"), Path.Combine(RepositoryRoot.Path, "src"));
            Assert.True(File.Exists(Path.Combine(RepositoryRoot.Path, "src/FineTunePlatform.Cli/bin/Release/net10.0/ftune.dll")), "the README's ftune is the Release build (./test.sh builds Release)");
            Directory.CreateDirectory(Path.Combine(checkout.FullName, ".run"));
            await File.WriteAllLinesAsync(Path.Combine(checkout.FullName, ".run", "platform.env"),
            [
                $"FINETUNE_BASE_URL={new Uri(_platform.Gateway.BaseAddress, "v1")}",
                $"FINETUNE_ADMIN_KEY={TrainingPlatform.AdminKey}",
                "FINETUNE_DASHBOARD_URL=http://127.0.0.1:1/",
            ]);
            var script = Path.Combine(checkout.FullName, "readme.sh");
            await File.WriteAllTextAsync(script, "set -euo pipefail\n" + string.Join("\n", blocks));

            var watched = Directory.GetFiles(PlatformServers.ServersDirectory, "*.pid")
                .Select(file => int.Parse(File.ReadAllText(file).Trim(), System.Globalization.CultureInfo.InvariantCulture))
                .Append(Environment.ProcessId);
            await using var outbound = new OutboundConnections(watched);
            var (exitCode, output) = await RunAsync("bash", [script], checkout.FullName, environment => { });
            var outside = await outbound.StopAsync();

            Assert.True(exitCode == 0, $"README.md's shell blocks failed (exit {exitCode}):\n{output}");
            Assert.Contains("processed: 60 chat examples", output, StringComparison.Ordinal);
            Assert.Matches(@"ftjob-\S+  succeeded  local-nano -> ft:local-nano:proj_\w+:tickets:ftjob-", output);
            Assert.Matches(@"ftjob-\S+  succeeded  local-nano -> ft:local-nano:proj_\w+:gated:ftjob-", output);
            Assert.Matches(@"evalrun_\S+  completed  ft:local-nano:\S+  passed \d+/16", output);
            Assert.Contains("\"object\":\"eval.run.comparison\"", output, StringComparison.Ordinal);
            Assert.Contains("\"priority\":10,\"max_concurrent_jobs\":3", output, StringComparison.Ordinal);
            Assert.True(outbound.Samples > 10 && outbound.SocketsSeen > 10, $"the watcher saw too little to prove anything ({outbound.Samples} samples, {outbound.SocketsSeen} sockets)");
            Assert.True(outside.Count == 0, "the platform connected outside loopback:\n" + string.Join("\n", outside));
        }
        finally
        {
            checkout.Delete(recursive: true);
        }
    }

    [Fact]
    public async Task The_readmes_csharp_sample_is_examples_ReadmeSample_and_prints_what_it_did()
    {
        var sample = Path.Combine(RepositoryRoot.Path, "examples", "ReadmeSample");
        var shown = CSharpBlock().Match(Readme);
        Assert.True(shown.Success, "README.md has no ```csharp block");
        Assert.Equal(File.ReadAllText(Path.Combine(sample, "Program.cs")).ReplaceLineEndings("\n").TrimEnd(), shown.Groups[1].Value.ReplaceLineEndings("\n").TrimEnd());

        var (_, key) = await _platform.Admin.CreateProjectAsync("member");
        var (exitCode, output) = await RunAsync("dotnet", [Path.Combine(sample, "bin", "Release", "net10.0", "ReadmeSample.dll")], RepositoryRoot.Path, environment =>
        {
            environment["FINETUNE_BASE_URL"] = new Uri(_platform.Gateway.BaseAddress, "v1").ToString();
            environment["FINETUNE_API_KEY"] = key;
        });

        Assert.True(exitCode == 0, $"the README's C# sample failed (exit {exitCode}):\n{output}");
        var lines = output.Trim().Split('\n');
        Assert.Matches("^uploaded tickets.jsonl as file-", lines[0]);
        Assert.Matches("^job ftjob-\\S+ [Ss]ucceeded: ft:local-nano:proj_\\w+:tickets-sdk:ftjob-", lines[1]);
        Assert.Matches("^\"My parcel has not arrived yet\" -> ", lines[2]);
        // The tuned router answers with one of its labels, spelled exactly.
        Assert.Contains(lines[2][(lines[2].IndexOf("-> ", StringComparison.Ordinal) + 3)..].Trim(), Teams);
        Assert.Matches("^eval eval_\\S+: ticket routing$", lines[3]);
        Assert.Matches("^run evalrun_\\S+ completed: \\d+ of 16 tickets routed right$", lines[4]);
    }

    private static async Task<(int ExitCode, string Output)> RunAsync(string program, string[] arguments, string directory, Action<IDictionary<string, string?>> configure)
    {
        var start = new ProcessStartInfo(program) { WorkingDirectory = directory, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        // A newcomer's shell: none of the platform's variables until the README sets them.
        foreach (var name in start.Environment.Keys.Where(name => name.StartsWith("FINETUNE_", StringComparison.Ordinal) || name.StartsWith("OPENAI_", StringComparison.Ordinal)).ToList())
        {
            start.Environment.Remove(name);
        }

        configure(start.Environment);
        using var process = Process.Start(start)!;
        var output = new System.Text.StringBuilder();
        var lines = new object();
        process.OutputDataReceived += (_, line) => { lock (lines) { output.Append(line.Data).Append('\n'); } };
        process.ErrorDataReceived += (_, line) => { lock (lines) { output.Append(line.Data).Append('\n'); } };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        using var timeout = new CancellationTokenSource(ScriptTimeout);
        try
        {
            await process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            lock (lines)
            {
                return (-1, $"timed out after {ScriptTimeout}\n{output}");
            }
        }

        process.WaitForExit();
        lock (lines)
        {
            return (process.ExitCode, output.ToString());
        }
    }

    [GeneratedRegex("<!-- doc-test -->\\s*```bash\\n(.*?)```", RegexOptions.Singleline)]
    private static partial Regex DocTestBlocks();

    [GeneratedRegex("```csharp\\n(.*?)```", RegexOptions.Singleline)]
    private static partial Regex CSharpBlock();
}
