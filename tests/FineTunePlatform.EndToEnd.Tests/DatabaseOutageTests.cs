using System.Net;
using System.Text.Json;
using FineTunePlatform.Testing;

namespace FineTunePlatform.EndToEnd.Tests;

public sealed class DatabaseOutageTests
{
    [Fact]
    public async Task Health_turns_unhealthy_naming_the_database_when_it_stops_while_liveness_stays_up()
    {
        var platform = await PlatformTestEnvironment.CreateAsync("outage");
        await using var postgres = await ScratchPostgres.StartAsync();
        Dictionary<string, string?> On(string database)
        {
            var settings = platform.SettingsFor(database);
            settings[$"ConnectionStrings:{database}"] = postgres.Database(database);
            return settings;
        }

        await using var datasets = new ServiceHost<Datasets.Grpc.PlatformInfoService>(On("datasetsdb"));
        await using var training = new ServiceHost<Training.Grpc.PlatformInfoService>(On("trainingdb"));
        await using var evaluation = new ServiceHost<Evaluation.Grpc.PlatformInfoService>(On("evaluationdb"));
        await using var gateway = new ServiceHost<Gateway.Grpc.PlatformInfoService>(On("gatewaydb"));
        var services = new (string Database, HttpClient Client)[]
        {
            ("datasetsdb", datasets.CreateHttpClient()),
            ("trainingdb", training.CreateHttpClient()),
            ("evaluationdb", evaluation.CreateHttpClient()),
            ("gatewaydb", gateway.CreateHttpClient()),
        };

        foreach (var (_, client) in services)
        {
            Assert.Equal(HttpStatusCode.OK, (await client.GetAsync(new Uri("/health", UriKind.Relative))).StatusCode);
        }

        await postgres.StopAsync();

        foreach (var (database, client) in services)
        {
            var health = await client.GetAsync(new Uri("/health", UriKind.Relative));
            var report = JsonDocument.Parse(await health.Content.ReadAsStringAsync()).RootElement;
            Assert.Equal(HttpStatusCode.ServiceUnavailable, health.StatusCode);
            Assert.Equal("Unhealthy", report.GetProperty("checks").GetProperty(database).GetProperty("status").GetString());
            Assert.Equal(HttpStatusCode.OK, (await client.GetAsync(new Uri("/alive", UriKind.Relative))).StatusCode);
            client.Dispose();
        }
    }
}
