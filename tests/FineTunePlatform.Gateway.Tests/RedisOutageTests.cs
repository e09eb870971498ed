using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Net.Sockets;
using FineTunePlatform.Testing;

namespace FineTunePlatform.Gateway.Tests;

/// <summary>Redis down: inference keeps working, limits then hold per gateway process.</summary>
public sealed class RedisOutageTests
{
    [Fact]
    public async Task Inference_survives_redis_going_away_with_limits_enforced_in_process()
    {
        var port = FreePort();
        using var redis = Process.Start(new ProcessStartInfo("redis-server", ["--port", port.ToString(System.Globalization.CultureInfo.InvariantCulture), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        {
            RedirectStandardOutput = true,
        })!;
        await using var upstream = await EchoCompletionsServer.StartAsync();
        var platform = await PlatformTestEnvironment.CreateAsync("redisdown");
        var settings = GatewayFixture.SettingsWithUpstream(platform.SettingsFor("gatewaydb"), upstream);
        settings["ConnectionStrings:redis"] = $"127.0.0.1:{port}";
        await using var gateway = new ServiceHost<Gateway.Grpc.PlatformInfoService>(settings);
        var fixture = new GatewayFixtureView(gateway);
        var (projectId, key) = await fixture.CreateProjectAsync();
        await fixture.SetProjectLimitsAsync(projectId, requestsPerMinute: 2);
        using var http = fixture.Client(key);
        var request = new { model = GatewayFixture.UpstreamModel, messages = new[] { new { role = "user", content = "hi" } } };
        Assert.Equal(HttpStatusCode.OK, (await http.PostAsJsonAsync("/v1/chat/completions", request)).StatusCode);

        redis.Kill();
        await redis.WaitForExitAsync();

        var during = new List<HttpStatusCode>();
        for (var i = 0; i < 3; i++)
        {
            during.Add((await http.PostAsJsonAsync("/v1/chat/completions", request)).StatusCode);
        }

        // The process-local bucket starts full: two more requests pass, the third is limited.
        Assert.Equal([HttpStatusCode.OK, HttpStatusCode.OK, HttpStatusCode.TooManyRequests], during);
        using var probe = gateway.CreateHttpClient();
        Assert.Equal(HttpStatusCode.ServiceUnavailable, (await probe.GetAsync(new Uri("/health", UriKind.Relative))).StatusCode);
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    /// <summary>The admin calls of GatewayFixture against a gateway this test configured itself.</summary>
    private sealed class GatewayFixtureView(ServiceHost<Gateway.Grpc.PlatformInfoService> gateway)
    {
        public HttpClient Client(string key)
        {
            var client = gateway.CreateHttpClient();
            client.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", key);
            return client;
        }

        public async Task<(string ProjectId, string Key)> CreateProjectAsync()
        {
            using var admin = Client(GatewayFixture.AdminKey);
            var project = await (await admin.PostAsJsonAsync("/admin/v1/projects", new { name = "redis-" + Guid.NewGuid().ToString("N")[..8] })).Content.ReadFromJsonAsync<System.Text.Json.JsonElement>();
            var projectId = project.GetProperty("id").GetString()!;
            var key = await (await admin.PostAsJsonAsync($"/admin/v1/projects/{projectId}/keys", new { name = "k", role = "member" })).Content.ReadFromJsonAsync<System.Text.Json.JsonElement>();
            return (projectId, key.GetProperty("value").GetString()!);
        }

        public async Task SetProjectLimitsAsync(string projectId, int requestsPerMinute)
        {
            using var admin = Client(GatewayFixture.AdminKey);
            (await admin.PostAsJsonAsync($"/admin/v1/projects/{projectId}/limits", new { requests_per_minute = requestsPerMinute })).EnsureSuccessStatusCode();
        }
    }
}
