using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using FineTunePlatform.Testing;

namespace FineTunePlatform.Gateway.Tests;

/// <summary>Redis down: inference keeps working, limits then hold per gateway process.</summary>
public sealed class RedisOutageTests
{
    [Fact]
    public async Task Inference_survives_redis_going_away_with_limits_enforced_in_process()
    {
        var port = LoopbackPorts.Free();
        using var redis = Process.Start(new ProcessStartInfo("redis-server", ["--port", port.ToString(System.Globalization.CultureInfo.InvariantCulture), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        {
            RedirectStandardOutput = true,
        })!;
        await using var upstream = await EchoCompletionsServer.StartAsync();
        var platform = await PlatformTestEnvironment.CreateAsync("redisdown");
        var settings = GatewayFixture.SettingsWithUpstream(platform.SettingsFor("gatewaydb"), upstream);
        settings["ConnectionStrings:redis"] = $"127.0.0.1:{port}";
        await using var gateway = new ServiceHost<Gateway.Grpc.PlatformInfoService>(settings);
        var admin = new GatewayAdmin(gateway, GatewayFixture.AdminKey);
        var (projectId, key) = await admin.CreateProjectAsync("member");
        await admin.SetProjectLimitsAsync(projectId, requestsPerMinute: 2, tokensPerMinute: null);
        using var http = admin.Client(key);
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
}
