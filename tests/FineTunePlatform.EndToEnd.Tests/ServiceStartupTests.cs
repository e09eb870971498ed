using System.Net;
using System.Reflection;
using System.Text.Json;
using FineTunePlatform.Contracts;
using FineTunePlatform.Testing;
using Google.Protobuf.Reflection;
using Grpc.Core;
using Grpc.Net.Client;

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
        var environment = EnvironmentWithEveryDatabase(rabbitmq: "localhost:5672", internalToken: "startup-test-internal-token");

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
            var info = await new PlatformInfo.PlatformInfoClient(grpc).GetInfoAsync(
                new GetInfoRequest(), new Metadata { { CallerMetadata.InternalToken, platform.InternalToken } });
            Assert.Equal(name, info.Service);
        }
    }

    /// <summary>
    /// Replicas of a service started together on a database that does not exist yet: one creates it, the migrations
    /// run once under the advisory lock, and every replica comes up (before, one of each pair crashed with "database
    /// already exists" or "relation already exists").
    /// </summary>
    [Theory]
    [MemberData(nameof(ServicesAndTheirDatabase))]
    public async Task Three_replicas_started_at_once_on_a_fresh_database_all_come_up(string project, string database)
    {
        var platform = await PlatformTestEnvironment.CreateAsync("replicas");
        var settings = platform.SettingsFor(database);

        var starts = Enumerable.Range(0, 3).Select(_ => ServiceProcess.StartAsync(project, settings, TimeSpan.FromMinutes(3))).ToList();
        await Task.WhenAll(starts.Select(start => start.ContinueWith(_ => { }, TaskScheduler.Default)));
        try
        {
            foreach (var start in starts)
            {
                Assert.True(start.IsCompletedSuccessfully, $"a replica of {project} did not come up: {start.Exception?.InnerException?.Message}");
            }
        }
        finally
        {
            foreach (var start in starts.Where(start => start.IsCompletedSuccessfully))
            {
                using var process = await start;
                process.Kill(entireProcessTree: true);
                await process.WaitForExitAsync();
            }
        }
    }

    [Theory]
    [MemberData(nameof(AllServices))]
    public async Task Service_without_the_internal_token_stops_naming_the_key(string project)
    {
        var environment = EnvironmentWithEveryDatabase(rabbitmq: PlatformServers.RabbitMq, internalToken: "too-short");

        var (exitCode, output) = await ServiceProcess.RunUntilExitAsync(project, environment, TimeSpan.FromSeconds(60));

        Assert.NotEqual(0, exitCode);
        Assert.Contains("'Internal:Token' is missing or shorter than 16 characters", output, StringComparison.Ordinal);
    }

    /// <summary>
    /// Every RPC of every service in the contracts, of every call kind, asked without the internal token and with a
    /// wrong one, on every host: the host that serves it answers Unauthenticated before any service code runs, the
    /// others Unimplemented. A new RPC is covered the day it is added to a .proto, with no check to remember.
    /// </summary>
    [Fact]
    public async Task Every_rpc_of_every_service_refuses_a_call_without_the_internal_token()
    {
        var platform = await PlatformTestEnvironment.CreateAsync("internal-auth");
        await using var datasets = new ServiceHost<Datasets.Grpc.PlatformInfoService>(platform.SettingsFor("datasetsdb"));
        await using var training = new ServiceHost<Training.Grpc.PlatformInfoService>(platform.SettingsFor("trainingdb"));
        await using var worker = new ServiceHost<Training.Worker.Grpc.PlatformInfoService>(platform.SettingsFor(null));
        await using var evaluation = new ServiceHost<Evaluation.Grpc.PlatformInfoService>(platform.SettingsFor("evaluationdb"));
        await using var gateway = new ServiceHost<Gateway.Grpc.PlatformInfoService>(platform.SettingsFor("gatewaydb"));
        var channels = new IServiceEndpoints[] { datasets, training, worker, evaluation, gateway }.Select(host => GrpcChannel.ForAddress(host.GrpcAddress)).ToList();

        var methods = typeof(CallerMetadata).Assembly.GetTypes()
            .Select(type => type.GetProperty("Descriptor", BindingFlags.Public | BindingFlags.Static))
            .Where(property => property?.PropertyType == typeof(FileDescriptor))
            .SelectMany(property => ((FileDescriptor)property!.GetValue(null)!).Services)
            .SelectMany(service => service.Methods)
            .ToList();
        Assert.True(methods.Count > 40, $"only {methods.Count} RPCs found in the contracts");

        var unprotected = new List<string>();
        var servedNowhere = new List<string>();
        foreach (var method in methods)
        {
            var served = false;
            foreach (var channel in channels)
            {
                foreach (var token in new[] { null, "wrong-internal-token-0123456789" })
                {
                    var status = await CallWithoutValidTokenAsync(channel, method, token);
                    if (status == StatusCode.Unauthenticated)
                    {
                        served = true;
                    }
                    else if (status != StatusCode.Unimplemented)
                    {
                        unprotected.Add($"{method.FullName} ({(token is null ? "no token" : "wrong token")}): {status}");
                    }
                }
            }

            if (!served)
            {
                servedNowhere.Add(method.FullName);
            }
        }

        foreach (var channel in channels)
        {
            channel.Dispose();
        }

        Assert.Empty(unprotected);
        Assert.Empty(servedNowhere);
    }

    /// <summary>What every service needs to start, each database a fresh one, with the broker and token given.</summary>
    private static Dictionary<string, string> EnvironmentWithEveryDatabase(string rabbitmq, string internalToken) => new()
    {
        ["ConnectionStrings__datasetsdb"] = PlatformServers.NewDatabase("startup"),
        ["ConnectionStrings__trainingdb"] = PlatformServers.NewDatabase("startup"),
        ["ConnectionStrings__evaluationdb"] = PlatformServers.NewDatabase("startup"),
        ["ConnectionStrings__gatewaydb"] = PlatformServers.NewDatabase("startup"),
        ["ConnectionStrings__redis"] = PlatformServers.Redis,
        ["ConnectionStrings__rabbitmq"] = rabbitmq,
        ["Internal__Token"] = internalToken,
    };

    private static async Task<StatusCode> CallWithoutValidTokenAsync(GrpcChannel channel, MethodDescriptor descriptor, string? token)
    {
        var bytes = Marshallers.Create<byte[]>(value => value, value => value);
        var type = (descriptor.IsClientStreaming, descriptor.IsServerStreaming) switch
        {
            (false, false) => MethodType.Unary,
            (true, false) => MethodType.ClientStreaming,
            (false, true) => MethodType.ServerStreaming,
            (true, true) => MethodType.DuplexStreaming,
        };
        var method = new Method<byte[], byte[]>(type, descriptor.Service.FullName, descriptor.Name, bytes, bytes);
        var headers = new Metadata { { CallerMetadata.ProjectId, "proj_attacker" }, { CallerMetadata.Role, "admin" } };
        if (token is not null)
        {
            headers.Add(CallerMetadata.InternalToken, token);
        }

        var options = new CallOptions(headers, DateTime.UtcNow.AddSeconds(30));
        var invoker = channel.CreateCallInvoker();
        try
        {
            switch (type)
            {
                case MethodType.Unary:
                    await invoker.AsyncUnaryCall(method, null, options, []);
                    break;
                case MethodType.ClientStreaming:
                    using (var call = invoker.AsyncClientStreamingCall(method, null, options))
                    {
                        await call.RequestStream.CompleteAsync();
                        await call.ResponseAsync;
                    }

                    break;
                case MethodType.ServerStreaming:
                    using (var call = invoker.AsyncServerStreamingCall(method, null, options, []))
                    {
                        await call.ResponseStream.MoveNext(CancellationToken.None);
                    }

                    break;
                default:
                    using (var call = invoker.AsyncDuplexStreamingCall(method, null, options))
                    {
                        await call.RequestStream.CompleteAsync();
                        await call.ResponseStream.MoveNext(CancellationToken.None);
                    }

                    break;
            }

            return StatusCode.OK;
        }
        catch (RpcException ex)
        {
            return ex.StatusCode;
        }
    }
}
