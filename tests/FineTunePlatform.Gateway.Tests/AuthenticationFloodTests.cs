using System.Collections.Concurrent;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text.Json;
using FineTunePlatform.Gateway.Auth;
using FineTunePlatform.Gateway.Grpc;
using FineTunePlatform.Testing;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.Logging;
using Xunit.Abstractions;

namespace FineTunePlatform.Gateway.Tests;

/// <summary>
/// Failed authentication is cheap and quiet: a flood of random keys from one address writes a bounded amount of
/// log (a summary line per address and interval, not lines per request), is answered 429 past a few failures a
/// second, and a key in use from the same address keeps working.
/// </summary>
public sealed class AuthenticationFloodTests(ITestOutputHelper output)
{
    [Fact]
    public async Task A_flood_of_random_keys_logs_a_bounded_amount_and_is_throttled_without_locking_out_valid_keys()
    {
        await using var upstream = await EchoCompletionsServer.StartAsync();
        var platform = await PlatformTestEnvironment.CreateAsync("authflood");
        var logs = new CapturedLogs();
        var settings = GatewayFixture.SettingsWithUpstream(platform.SettingsFor("gatewaydb"), upstream);
        // Everything at Information, as ./run.sh logs: per-request lines would show at once.
        settings["Logging:LogLevel:Default"] = "Information";
        // Except database commands: their level is the platform's log defaults' business (Warning), and the lookups
        // that reach the database at all are bounded below by the 401 count.
        settings["Logging:LogLevel:Npgsql"] = "Warning";
        await using var gateway = new LoggedGatewayHost(settings, logs);
        var admin = new GatewayAdmin(gateway, GatewayFixture.AdminKey);
        var (_, key) = await admin.CreateProjectAsync("reader");
        using var valid = admin.Client(key);
        var chat = new { model = GatewayFixture.UpstreamModel, messages = new[] { new { role = "user", content = "hi" } } };
        Assert.Equal(HttpStatusCode.OK, (await valid.PostAsJsonAsync("/v1/chat/completions", chat)).StatusCode);

        const int Flood = 1500;
        const int Parallelism = 8;
        var statuses = new ConcurrentDictionary<HttpStatusCode, int>();
        using var anonymous = gateway.CreateHttpClient();
        var bytesBefore = logs.Bytes;
        var started = DateTime.UtcNow;
        string? throttledBody = null;
        await Parallel.ForAsync(0, Flood, new ParallelOptions { MaxDegreeOfParallelism = Parallelism }, async (_, ct) =>
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, "/v1/models");
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", "sk-ft-" + RandomNumberGenerator.GetHexString(48, lowercase: true));
            using var response = await anonymous.SendAsync(request, ct);
            statuses.AddOrUpdate(response.StatusCode, 1, (_, count) => count + 1);
            if (response.StatusCode == HttpStatusCode.TooManyRequests)
            {
                throttledBody ??= await response.Content.ReadAsStringAsync(ct);
            }
        });
        var seconds = (DateTime.UtcNow - started).TotalSeconds;
        var logged = logs.Bytes - bytesBefore;

        // The key in use was read before the flood: it passes even while its address is throttled.
        Assert.Equal(HttpStatusCode.OK, (await valid.PostAsJsonAsync("/v1/chat/completions", chat)).StatusCode);

        Assert.Equal(Flood, statuses.Values.Sum());
        Assert.All(statuses.Keys, status => Assert.True(status is HttpStatusCode.Unauthorized or HttpStatusCode.TooManyRequests, $"unexpected {status}"));
        output.WriteLine($"{Flood} random keys in {seconds:F1} s: {statuses.GetValueOrDefault(HttpStatusCode.Unauthorized)} x 401, "
            + $"{statuses.GetValueOrDefault(HttpStatusCode.TooManyRequests)} x 429, {logged} bytes logged:\n{logs.Text}");
        // About FailuresPerSecond reach a key lookup each second (plus those already past the check when the count
        // filled: at most one per parallel client); the rest are 429s.
        Assert.True(statuses.GetValueOrDefault(HttpStatusCode.Unauthorized) <= (AuthenticationFailures.FailuresPerSecond + Parallelism) * (Math.Ceiling(seconds) + 1),
            $"{statuses.GetValueOrDefault(HttpStatusCode.Unauthorized)} lookups in {seconds:F1} s");
        var error = JsonDocument.Parse(throttledBody!).RootElement.GetProperty("error");
        Assert.Equal("rate_limit_error", error.GetProperty("type").GetString());
        // ~750 bytes a failure before; now a line per address per minute (plus whatever else the gateway logs meanwhile).
        Assert.True(logged < 4 * 1024, $"{logged} bytes logged for {Flood} failed authentications in {seconds:F1} s:\n{logs.Text}");
        Assert.Contains(logs.Lines, line => line.Contains(nameof(AuthenticationFailures), StringComparison.Ordinal) && line.Contains("failed authentication", StringComparison.Ordinal));
    }

    private sealed class LoggedGatewayHost(IDictionary<string, string?> settings, CapturedLogs logs) : ServiceHost<PlatformInfoService>(settings)
    {
        protected override void ConfigureWebHost(IWebHostBuilder builder)
        {
            base.ConfigureWebHost(builder);
            builder.ConfigureLogging(logging => logging.AddProvider(logs));
        }
    }

    /// <summary>Every enabled log line, formatted as a console would write it (category, level, message).</summary>
    private sealed class CapturedLogs : ILoggerProvider
    {
        private readonly ConcurrentQueue<string> _lines = new();
        private long _bytes;

        public long Bytes => Interlocked.Read(ref _bytes);

        public IEnumerable<string> Lines => _lines;

        public string Text => string.Join('\n', _lines.TakeLast(50));

        public ILogger CreateLogger(string categoryName) => new Logger(this, categoryName);

        public void Dispose()
        {
        }

        private sealed class Logger(CapturedLogs owner, string category) : ILogger
        {
            public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

            public bool IsEnabled(LogLevel logLevel) => logLevel != LogLevel.None;

            public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
            {
                var line = $"{logLevel}: {category}[{eventId.Id}] {formatter(state, exception)}{(exception is null ? "" : " " + exception)}";
                owner._lines.Enqueue(line);
                Interlocked.Add(ref owner._bytes, line.Length + 1);
            }
        }
    }
}
