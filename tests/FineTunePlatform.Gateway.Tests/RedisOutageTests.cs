using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using FineTunePlatform.Testing;

namespace FineTunePlatform.Gateway.Tests;

/// <summary>Redis down: inference keeps working, limits then hold per gateway process, and readiness says Degraded.</summary>
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

        // Readiness says Degraded, still 200: a probe must keep a gateway that serves in rotation. The public answer
        // is statuses only; the Redis error and its address are for operators, behind the admin key.
        using var probe = gateway.CreateHttpClient();
        var health = await probe.GetAsync(new Uri("/health", UriKind.Relative));
        var publicBody = await health.Content.ReadAsStringAsync();
        Assert.True(health.StatusCode == HttpStatusCode.OK, publicBody);
        var report = JsonDocument.Parse(publicBody).RootElement;
        Assert.Equal("Degraded", report.GetProperty("status").GetString());
        Assert.Contains(report.GetProperty("checks").EnumerateObject(), check => check.Value.GetProperty("status").GetString() == "Degraded");
        Assert.All(report.GetProperty("checks").EnumerateObject(), check => Assert.Equal(["status"], check.Value.EnumerateObject().Select(field => field.Name)));
        Assert.DoesNotContain(port.ToString(System.Globalization.CultureInfo.InvariantCulture), publicBody, StringComparison.Ordinal);
        Assert.DoesNotContain("127.0.0.1", publicBody, StringComparison.Ordinal);

        Assert.Equal(HttpStatusCode.Unauthorized, (await probe.GetAsync(new Uri("/admin/v1/health", UriKind.Relative))).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await http.GetAsync(new Uri("/admin/v1/health", UriKind.Relative))).StatusCode);
        using var operatorClient = admin.Client(GatewayFixture.AdminKey);
        var details = await operatorClient.GetStringAsync(new Uri("/admin/v1/health", UriKind.Relative));
        var redisCheck = JsonDocument.Parse(details).RootElement.GetProperty("checks").EnumerateObject().Single(check => check.Value.GetProperty("status").GetString() == "Degraded");
        Assert.False(string.IsNullOrEmpty(redisCheck.Value.GetProperty("error").GetString() ?? redisCheck.Value.GetProperty("description").GetString()), details);
    }
}
