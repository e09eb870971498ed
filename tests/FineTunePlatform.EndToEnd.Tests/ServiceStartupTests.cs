using System.Net;
using System.Text.Json;
using FineTunePlatform.Contracts;
using FineTunePlatform.Testing;

namespace FineTunePlatform.EndToEnd.Tests;

/// <summary>The foundation's promises about every service: fail fast on bad configuration, serve gRPC and health.</summary>
public sealed class ServiceStartupTests
{
    public static TheoryData<string, string> ServicesAndTheirDatabase => new()
    {
        { "FineTunePlatform.Datasets", "datasetsdb" },
        { "FineTunePlatform.Training", "trainingdb" },
        { "FineTunePlatform.Evaluation", "evaluationdb" },
        { "FineTunePlatform.Gateway", "gatewaydb" },
    };

    public static TheoryData<string> AllServices => new()
    {
        "FineTunePlatform.Datasets",
        "FineTunePlatform.Training",
        "FineTunePlatform.Training.Worker",
        "FineTunePlatform.Evaluation",
        "FineTunePlatform.Gateway",
    };

    [Theory]
    [MemberData(nameof(ServicesAndTheirDatabase))]
    public async Task Service_without_its_database_connection_string_stops_naming_the_key_and_an_example(string project, string database)
    {
        var environment = new Dictionary<string, string>
        {
            ["ConnectionStrings__redis"] = PlatformServers.Redis,
            ["ConnectionStrings__rabbitmq"] = PlatformServers.RabbitMq,
            ["Internal__Token"] = "startup-test-internal-token",
        };

        var (exitCode, output) = await ServiceProcess.RunUntilExitAsync(project, environment, TimeSpan.FromSeconds(60));

        Assert.NotEqual(0, exitCode);
        Assert.Contains($"Connection string 'ConnectionStrings:{database}' is missing", output, StringComparison.Ordinal);
        Assert.Contains($"ConnectionStrings__{database}=\"Host=", output, StringComparison.Ordinal);
    }

    [Theory]
    [MemberData(nameof(AllServices))]
    public async Task Service_with_a_malformed_rabbitmq_uri_stops_naming_the_key(string project)
    {
        var environment = new Dictionary<string, string>
        {
            ["ConnectionStrings__datasetsdb"] = PlatformServers.NewDatabase("startup"),
            ["ConnectionStrings__trainingdb"] = PlatformServers.NewDatabase("startup"),
            ["ConnectionStrings__evaluationdb"] = PlatformServers.NewDatabase("startup"),
            ["ConnectionStrings__gatewaydb"] = PlatformServers.NewDatabase("startup"),
            ["ConnectionStrings__redis"] = PlatformServers.Redis,
            ["ConnectionStrings__rabbitmq"] = "localhost:5672",
            ["Internal__Token"] = "startup-test-internal-token",
        };

        var (exitCode, output) = await ServiceProcess.RunUntilExitAsync(project, environment, TimeSpan.FromSeconds(60));

        Assert.NotEqual(0, exitCode);
        Assert.Contains("Connection string 'ConnectionStrings:rabbitmq' is malformed", output, StringComparison.Ordinal);
        Assert.Contains("ConnectionStrings__rabbitmq=\"amqp://", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Every_service_serves_grpc_health_and_liveness_on_one_port()
    {
        var platform = await PlatformTestEnvironment.CreateAsync("startup");
        await using var datasets = new ServiceHost<Datasets.Grpc.PlatformInfoService>(platform.SettingsFor("datasetsdb"));
        await using var training = new ServiceHost<Training.Grpc.PlatformInfoService>(platform.SettingsFor("trainingdb"));
        await using var worker = new ServiceHost<Training.Worker.Grpc.PlatformInfoService>(platform.SettingsFor(null));
        await using var evaluation = new ServiceHost<Evaluation.Grpc.PlatformInfoService>(platform.SettingsFor("evaluationdb"));
        await using var gateway = new ServiceHost<Gateway.Grpc.PlatformInfoService>(platform.SettingsFor("gatewaydb"));

        var hosts = new (string Name, Func<Uri> Address, Func<Grpc.Net.Client.GrpcChannel> Channel)[]
        {
            ("datasets", () => datasets.BaseAddress, datasets.CreateGrpcChannel),
            ("training", () => training.BaseAddress, training.CreateGrpcChannel),
            ("training-worker", () => worker.BaseAddress, worker.CreateGrpcChannel),
            ("evaluation", () => evaluation.BaseAddress, evaluation.CreateGrpcChannel),
            ("gateway", () => gateway.BaseAddress, gateway.CreateGrpcChannel),
        };

        foreach (var (name, address, channel) in hosts)
        {
            using var http = new HttpClient { BaseAddress = address() };
            var health = await http.GetAsync(new Uri("/health", UriKind.Relative));
            var body = await health.Content.ReadAsStringAsync();
            Assert.True(health.StatusCode == HttpStatusCode.OK, $"{name} /health: {body}");
            Assert.Equal("Healthy", JsonDocument.Parse(body).RootElement.GetProperty("status").GetString());

            var alive = await http.GetAsync(new Uri("/alive", UriKind.Relative));
            Assert.Equal(HttpStatusCode.OK, alive.StatusCode);

            using var grpc = channel();
            var info = await new PlatformInfo.PlatformInfoClient(grpc).GetInfoAsync(new GetInfoRequest());
            Assert.Equal(name, info.Service);
        }
    }
}
