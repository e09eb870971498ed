using System.ClientModel;
using System.ClientModel.Primitives;
using System.Diagnostics;
using System.Net;
using System.Text;
using System.Text.Json;
using FineTunePlatform.Testing;
using Aspire.Hosting;
using Aspire.Hosting.ApplicationModel;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;
using OpenAI;
using OpenAI.Chat;
using OpenAI.Files;
using OpenAI.FineTuning;

namespace FineTunePlatform.AppHost.Tests;

/// <summary>
/// The platform as `./run.sh` runs it: the AppHost starts the servers as executables (no container runtime here),
/// every service and a trainer worker, each becomes healthy, and a team's first steps work through the gateway with
/// the official OpenAI SDK. The dashboard answers. One platform is started for all the tests of this class
/// (<see cref="PlatformAppHost"/>): it takes minutes on our machines.
/// </summary>
public sealed class AppHostTests(PlatformAppHost platform) : IClassFixture<PlatformAppHost>
{
    [Fact]
    public async Task The_AppHost_starts_every_resource_healthy_and_a_team_fine_tunes_and_chats_through_the_gateway()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(10));
        var client = await platform.NewTeamClientAsync();
        var model = await FineTuneAsync(client, "apphost", timeout.Token);

        ChatCompletion answer = await client.GetChatClient(model).CompleteChatAsync([new UserChatMessage("ticket 3: where is my refund?")], cancellationToken: timeout.Token);
        Assert.Equal(model, answer.Model);
        Assert.True(answer.Usage.OutputTokenCount > 0, "the tuned model generated nothing");

        using var dashboard = new HttpClient();
        var login = await dashboard.GetAsync(await platform.App.GetDashboardUrlAsync(timeout.Token) ?? throw new InvalidOperationException("no dashboard URL"), timeout.Token);
        Assert.Equal(HttpStatusCode.OK, login.StatusCode);
    }

    /// <summary>
    /// kill -9 of the only trainer worker: DCP reports the replica as no longer running with a non-zero exit code,
    /// the AppHost starts it again by itself (<c>CrashedReplicaRestarter</c>), and a job then trains to the end on the
    /// new process (with one replica, nothing else could train it).
    /// </summary>
    [Fact]
    public async Task A_killed_trainer_worker_is_reported_exited_then_restarted_and_the_platform_still_trains()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(10));
        await platform.App.ResourceNotifications.WaitForResourceHealthyAsync("training-worker", timeout.Token);
        var killed = platform.ServiceProcess("training-worker").Process;

        var states = new List<string>();
        using var watching = CancellationTokenSource.CreateLinkedTokenSource(timeout.Token);
        var exitSeen = new TaskCompletionSource<(string State, int ExitCode)>(TaskCreationOptions.RunContinuationsAsynchronously);
        var runningAgain = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var watch = Task.Run(async () =>
        {
            await foreach (var update in platform.App.ResourceNotifications.WatchAsync(watching.Token))
            {
                if (update.Resource.Name != "training-worker" || update.Snapshot.State?.Text is not { } state)
                {
                    continue;
                }

                states.Add($"{state}({update.Snapshot.ExitCode})");
                if (!exitSeen.Task.IsCompleted && state != KnownResourceStates.Running && update.Snapshot.ExitCode is { } code and not 0)
                {
                    exitSeen.SetResult((state, code));
                }
                else if (exitSeen.Task.IsCompleted && state == KnownResourceStates.Running)
                {
                    runningAgain.SetResult();
                    return;
                }
            }
        }, watching.Token);

        killed.Kill();
        try
        {
            var (state, exitCode) = await exitSeen.Task.WaitAsync(TimeSpan.FromMinutes(1), timeout.Token);
            Assert.Contains(state, new[] { KnownResourceStates.Exited, KnownResourceStates.Finished });
            Assert.NotEqual(0, exitCode);
            await runningAgain.Task.WaitAsync(TimeSpan.FromMinutes(2), timeout.Token);
        }
        catch (TimeoutException)
        {
            Assert.Fail($"the worker's states after kill -9 of pid {killed.Id}: {string.Join(", ", states)}");
        }
        finally
        {
            await watching.CancelAsync();
            await watch.ContinueWith(_ => { }, TaskScheduler.Default);
        }

        await platform.App.ResourceNotifications.WaitForResourceHealthyAsync("training-worker", timeout.Token);
        Assert.NotEqual(killed.Id, platform.ServiceProcess("training-worker").Process.Id);
        Assert.StartsWith("ft:local-nano:", await FineTuneAsync(await platform.NewTeamClientAsync(), "restarted", timeout.Token), StringComparison.Ordinal);
    }

    /// <summary>
    /// Each service receives only its own database's connection string, as its own login role (not the superuser),
    /// and its migrations ran as that role. The role owns everything in its database and cannot open another
    /// service's database (nor `postgres`), create roles or create databases.
    /// </summary>
    [Fact]
    public async Task Each_service_connects_as_its_own_role_that_reaches_only_its_own_database()
    {
        var owners = new Dictionary<string, string> { ["datasets"] = "datasetsdb", ["training"] = "trainingdb", ["evaluation"] = "evaluationdb", ["gateway"] = "gatewaydb" };
        static List<string> DatabaseStrings(IReadOnlyDictionary<string, string> environment) =>
            [.. environment.Keys.Where(key => key.StartsWith("ConnectionStrings__", StringComparison.Ordinal) && key.EndsWith("db", StringComparison.Ordinal))];

        // Nothing of the AppHost's own environment's secrets (the suite's servers' ConnectionStrings__*, the admin key
        // handed to the AppHost as Parameters__bootstrap-admin-key) reaches a service: DCP passes its environment on.
        foreach (var service in owners.Keys.Append("training-worker"))
        {
            Assert.DoesNotContain(platform.ServiceProcess(service).Environment.Keys, key => key.StartsWith("Parameters__", StringComparison.OrdinalIgnoreCase));
        }

        Assert.Empty(DatabaseStrings(platform.ServiceProcess("training-worker").Environment));
        foreach (var (service, database) in owners)
        {
            // What the running process received, read from /proc.
            var environment = platform.ServiceProcess(service).Environment;
            Assert.Equal([$"ConnectionStrings__{database}"], DatabaseStrings(environment));

            var own = new NpgsqlConnectionStringBuilder(environment[$"ConnectionStrings__{database}"]);
            Assert.Equal(service, own.Username);
            await using (var connection = new NpgsqlConnection(own.ConnectionString))
            {
                await connection.OpenAsync();
                Assert.False(await ScalarAsync<bool>(connection,
                    "SELECT rolsuper OR rolcreatedb OR rolcreaterole OR rolreplication OR rolbypassrls FROM pg_roles WHERE rolname = current_user"));
                Assert.True(await ScalarAsync<long>(connection, "SELECT count(*) FROM \"__EFMigrationsHistory\"") > 0, $"{database} is not migrated");
                Assert.Equal(0L, await ScalarAsync<long>(connection,
                    "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND c.relowner <> current_user::regrole"));
                await AssertRefusedAsync(connection, $"CREATE ROLE intruder_{service} LOGIN");
                await AssertRefusedAsync(connection, $"CREATE DATABASE intruder_{service}");
            }

            foreach (var other in owners.Values.Where(name => name != database).Append("postgres"))
            {
                await using var connection = new NpgsqlConnection(new NpgsqlConnectionStringBuilder(own.ConnectionString) { Database = other }.ConnectionString);
                var refused = await Assert.ThrowsAsync<PostgresException>(() => connection.OpenAsync());
                Assert.Equal(PostgresErrorCodes.InsufficientPrivilege, refused.SqlState);
            }
        }

        static async Task AssertRefusedAsync(NpgsqlConnection connection, string sql)
        {
            await using var command = new NpgsqlCommand(sql, connection);
            var refused = await Assert.ThrowsAsync<PostgresException>(() => command.ExecuteNonQueryAsync());
            Assert.Equal(PostgresErrorCodes.InsufficientPrivilege, refused.SqlState);
        }

        static async Task<T> ScalarAsync<T>(NpgsqlConnection connection, string sql)
        {
            await using var command = new NpgsqlCommand(sql, connection);
            await using var reader = await command.ExecuteReaderAsync();
            Assert.True(await reader.ReadAsync());
            return reader.GetFieldValue<T>(0);
        }
    }

    /// <summary>
    /// Each service receives the broker as its own user (the one eng/servers/rabbitmq-permissions.tsv gives that
    /// service's permissions; BrokerAccessTests proves what they allow), on the platform's virtual host.
    /// </summary>
    [Theory]
    [InlineData("datasets")]
    [InlineData("training")]
    [InlineData("training-worker")]
    [InlineData("evaluation")]
    [InlineData("gateway")]
    public void Each_service_connects_to_the_broker_as_its_own_user(string service)
    {
        var broker = new Uri(platform.ServiceProcess(service).Environment["ConnectionStrings__rabbitmq"]);
        Assert.Equal($"finetuneplatform-{service}", Uri.UnescapeDataString(broker.UserInfo.Split(':')[0]));
        Assert.Equal("/finetuneplatform", broker.AbsolutePath);
    }

    /// <summary>Uploads a 12-example file and fine-tunes local-nano on it to the end; the tuned model's id.</summary>
    private static async Task<string> FineTuneAsync(OpenAIClient client, string suffix, CancellationToken cancellationToken)
    {
        var lines = new StringBuilder();
        for (var i = 0; i < 12; i++)
        {
            lines.Append(JsonSerializer.Serialize(new
            {
                messages = new object[]
                {
                    new { role = "user", content = $"ticket {i}: where is my refund?" },
                    new { role = "assistant", content = i % 2 == 0 ? "billing" : "support" },
                },
            })).Append('\n');
        }

        OpenAIFile file = await client.GetOpenAIFileClient().UploadFileAsync(BinaryData.FromString(lines.ToString()), "tickets.jsonl", FileUploadPurpose.FineTune);
#pragma warning disable OPENAI001 // the SDK marks its fine-tuning client experimental
        // Three epochs set by hand (through the SDK's protocol method: its typed options do not expose n_epochs):
        // "auto" trains a 12-example file for about a minute on a quiet machine, many on a loaded one.
        var request = BinaryContent.Create(BinaryData.FromObjectAsJson(new
        {
            model = "local-nano",
            training_file = file.Id,
            suffix,
            method = new { type = "supervised", supervised = new { hyperparameters = new { n_epochs = 3 } } },
        }));
        var job = await client.GetFineTuningClient().FineTuneAsync(request, waitUntilCompleted: true, new RequestOptions { CancellationToken = cancellationToken });
        Assert.Equal(FineTuningStatus.Succeeded, job.Status);
        return job.Value!;
#pragma warning restore OPENAI001
    }
}

/// <summary>
/// The AppHost started once for <see cref="AppHostTests"/>: servers as executables in a fresh data directory, one
/// trainer worker, fixed secrets, every resource healthy before the first test.
/// </summary>
public sealed class PlatformAppHost : IAsyncLifetime
{
    private const string AdminKey = "sk-ft-apphost-test-admin-key-0123456789abcdef";
    private const string AdminKeyVariable = "Parameters__bootstrap-admin-key";

    private static readonly string[] Resources = ["postgres", "redis", "rabbitmq", "datasets", "training", "training-worker", "evaluation", "gateway"];

    private readonly string _data = Path.Combine(RepositoryRoot.Path, ".test-run", "apphost-" + Guid.NewGuid().ToString("N")[..8]);

    // Unique per run, so the test finds this platform's processes among the machine's (another checkout's tests may run beside).
    private readonly string _internalToken = "apphost-test-internal-token-" + Guid.NewGuid().ToString("N");

    private DistributedApplication? _app;

    public DistributedApplication App => _app ?? throw new InvalidOperationException("the AppHost is not started");

    public async Task InitializeAsync()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(10));
        // One secret through the environment, as ./run.sh hands them all to the AppHost: it must reach no service
        // (Each_service_connects_as_its_own_role_that_reaches_only_its_own_database). The AppHost runs in this process.
        Environment.SetEnvironmentVariable(AdminKeyVariable, AdminKey);
        var appHost = await DistributedApplicationTestingBuilder.CreateAsync<Projects.FineTunePlatform_AppHost>(
            [
                "--Platform:Servers=executables",
                $"--Platform:DataDirectory={_data}",
                "--Platform:WorkerReplicas=1",
                $"--Parameters:internal-token={_internalToken}",
                "--Parameters:postgres-password=apphostTestPassword0123",
                "--Parameters:postgres-datasets-password=apphostTestDatasetsRole0123",
                "--Parameters:postgres-training-password=apphostTestTrainingRole0123",
                "--Parameters:postgres-evaluation-password=apphostTestEvaluationRole0123",
                "--Parameters:postgres-gateway-password=apphostTestGatewayRole0123",
                "--Parameters:rabbitmq-admin-password=apphostTestBrokerAdmin0123",
                "--Parameters:rabbitmq-datasets-password=apphostTestBrokerDatasets0123",
                "--Parameters:rabbitmq-training-password=apphostTestBrokerTraining0123",
                "--Parameters:rabbitmq-training-worker-password=apphostTestBrokerWorker0123",
                "--Parameters:rabbitmq-evaluation-password=apphostTestBrokerEvaluation0123",
                "--Parameters:rabbitmq-gateway-password=apphostTestBrokerGateway0123",
                // Keep the ports the AppHost reserved for itself (LoopbackPortReservations) instead of DCP's random ones.
                "--DcpPublisher:RandomizePorts=false",
            ],
            (options, _) => options.DisableDashboard = false,
            timeout.Token);
        _app = await appHost.BuildAsync(timeout.Token);
        await _app.StartAsync(timeout.Token);
        foreach (var resource in Resources)
        {
            await _app.ResourceNotifications.WaitForResourceHealthyAsync(resource, timeout.Token);
        }
    }

    /// <summary>A new team project with a member key, as an OpenAI SDK client of the gateway.</summary>
    public async Task<OpenAIClient> NewTeamClientAsync()
    {
        var gateway = App.GetEndpoint("gateway", "http");
        var admin = new GatewayAdmin(new ServiceAddresses(gateway, App.GetEndpoint("gateway", "grpc")), AdminKey);
        var (_, key) = await admin.CreateProjectAsync("member");
        return new OpenAIClient(new ApiKeyCredential(key), new OpenAIClientOptions { Endpoint = new Uri(gateway, "v1") });
    }

    /// <summary>
    /// A service's own process with the environment it was started with: the process running the service's assembly
    /// that carries this platform's internal token and the service's name (DCP may start it through a `dotnet run`
    /// host, which carries them too). One per service: the platform runs one replica of each.
    /// </summary>
    public (Process Process, IReadOnlyDictionary<string, string> Environment) ServiceProcess(string service)
    {
        var marked = new List<(int Pid, string CommandLine, Dictionary<string, string> Environment)>();
        foreach (var directory in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(directory), out var pid))
            {
                continue;
            }

            try
            {
                var environment = File.ReadAllText(Path.Combine(directory, "environ")).Split('\0', StringSplitOptions.RemoveEmptyEntries)
                    .Select(variable => variable.Split('=', 2)).Where(pair => pair.Length == 2)
                    .GroupBy(pair => pair[0]).ToDictionary(group => group.Key, group => group.Last()[1]);
                if (environment.GetValueOrDefault("Internal__Token") == _internalToken && environment.GetValueOrDefault("OTEL_SERVICE_NAME") == service)
                {
                    marked.Add((pid, File.ReadAllText(Path.Combine(directory, "cmdline")).Replace('\0', ' '), environment));
                }
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                // A process that ended meanwhile.
            }
        }

        var assembly = service switch
        {
            "training-worker" => "FineTunePlatform.Training.Worker",
            _ => "FineTunePlatform." + char.ToUpperInvariant(service[0]) + service[1..],
        };
        var running = marked.Where(process => process.CommandLine.Contains(assembly, StringComparison.Ordinal)
            && !process.CommandLine.Contains(" run ", StringComparison.Ordinal)).ToList();
        return running.Count == 1
            ? (System.Diagnostics.Process.GetProcessById(running[0].Pid), running[0].Environment)
            : throw new InvalidOperationException($"expected one {service} process, found: {string.Join("; ", marked.Select(process => $"{process.Pid} {process.CommandLine}"))}");
    }

    public async Task DisposeAsync()
    {
        Environment.SetEnvironmentVariable(AdminKeyVariable, null);
        if (_app is not null)
        {
            await _app.StopAsync(CancellationToken.None);
            await _app.DisposeAsync();
        }

        if (Directory.Exists(_data))
        {
            Directory.Delete(_data, recursive: true);
        }
    }
}
