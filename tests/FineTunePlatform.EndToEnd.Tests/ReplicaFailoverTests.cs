using FineTunePlatform.Contracts;
using FineTunePlatform.Testing;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace FineTunePlatform.EndToEnd.Tests;

/// <summary>
/// Internal gRPC clients given two replicas of a service, one of them dead (its port reserved, nothing listening):
/// service discovery alternates between them, and every call must still succeed (the retry goes to the live one).
/// Before, every second call failed Unavailable: a worker's claim moved its TrainJob to the error queue, and the
/// gateway answered 503.
/// </summary>
public sealed class ReplicaFailoverTests
{
    [Fact]
    public async Task Every_call_succeeds_when_one_of_two_replicas_is_dead()
    {
        var platform = await PlatformTestEnvironment.CreateAsync("failover");
        await using var training = new ServiceHost<Training.Grpc.PlatformInfoService>(platform.SettingsFor("trainingdb"));
        // Reserved for this process and never bound: a replica that died.
        var deadPort = LoopbackPorts.Free();

        var services = new ServiceCollection();
        services.AddSingleton<IConfiguration>(new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Internal:Token"] = platform.InternalToken,
            ["services:training:grpc:0"] = $"http://127.0.0.1:{deadPort}",
            ["services:training:grpc:1"] = training.GrpcAddress.ToString().TrimEnd('/'),
        }).Build());
        services.AddServiceDiscovery();
        services.ConfigureHttpClientDefaults(http => http.AddServiceDiscovery());
        services.AddInternalGrpcClient<PlatformInfo.PlatformInfoClient>("training");
        await using var provider = services.BuildServiceProvider();
        var client = provider.GetRequiredService<PlatformInfo.PlatformInfoClient>();

        for (var i = 0; i < 20; i++)
        {
            var info = await client.GetInfoAsync(new GetInfoRequest(), deadline: DateTime.UtcNow.AddSeconds(10));
            Assert.Equal("training", info.Service);
        }
    }
}
