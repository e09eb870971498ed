using System.Diagnostics;

namespace FineTunePlatform.Testing;

/// <summary>
/// A PostgreSQL cluster of a test's own (eng/servers.sh start DIR --only postgres), for tests that stop the
/// database under a running service; the shared servers must stay up for everyone else.
/// </summary>
public sealed class ScratchPostgres : IAsyncDisposable
{
    private readonly string _directory;

    private ScratchPostgres(string directory, string server)
    {
        _directory = directory;
        Server = server;
    }

    /// <summary>Connection string to the cluster's `postgres` database.</summary>
    public string Server { get; }

    public string Database(string name) => new Npgsql.NpgsqlConnectionStringBuilder(Server) { Database = name }.ConnectionString;

    public static async Task<ScratchPostgres> StartAsync()
    {
        var directory = Path.Combine(RepositoryRoot.Path, ".test-run", "scratch-pg-" + Guid.NewGuid().ToString("N")[..8]);
        await RunServersScriptAsync("start", directory, "--only", "postgres");
        var env = await File.ReadAllLinesAsync(Path.Combine(directory, "servers.env"));
        var server = env.Single(line => line.StartsWith("export FTP_POSTGRES_SERVER=", StringComparison.Ordinal))
            .Split('=', 2)[1].Trim('\'');
        return new ScratchPostgres(directory, server);
    }

    public Task StopAsync() => RunServersScriptAsync("stop", _directory);

    public async ValueTask DisposeAsync()
    {
        await StopAsync();
        if (Directory.Exists(_directory))
        {
            Directory.Delete(_directory, recursive: true);
        }
    }

    private static async Task RunServersScriptAsync(params string[] arguments)
    {
        var start = new ProcessStartInfo(Path.Combine(RepositoryRoot.Path, "eng", "servers.sh"), arguments)
        {
            RedirectStandardError = true,
            RedirectStandardOutput = true,
        };
        start.Environment["FTP_SERVERS_FAST"] = "1";
        using var process = Process.Start(start)!;
        var stderr = process.StandardError.ReadToEndAsync();
        await process.StandardOutput.ReadToEndAsync();
        await process.WaitForExitAsync();
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"eng/servers.sh {string.Join(' ', arguments)} failed: {await stderr}");
        }
    }
}
