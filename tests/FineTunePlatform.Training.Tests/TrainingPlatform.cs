using System.ClientModel;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using FineTunePlatform.Testing;
using Npgsql;
using OpenAI;
using OpenAI.Chat;
using OpenAI.Evals;
using OpenAI.Files;
using OpenAI.FineTuning;
using Xunit;
using DatasetsEntry = FineTunePlatform.Datasets.Grpc.PlatformInfoService;
using EvaluationEntry = FineTunePlatform.Evaluation.Grpc.PlatformInfoService;
using GatewayEntry = FineTunePlatform.Gateway.Grpc.PlatformInfoService;
using TrainingEntry = FineTunePlatform.Training.Grpc.PlatformInfoService;
using WorkerEntry = FineTunePlatform.Training.Worker.Grpc.PlatformInfoService;

namespace FineTunePlatform.Training.Tests;

/// <summary>
/// The whole platform on real sockets, each service with its own database: datasets, training, evaluation, the
/// gateway in front of them, and trainer workers (in-process hosts here; the fault tests add real processes), with
/// an OpenAI-compatible upstream provider (<see cref="EchoCompletionsServer"/>) routed as <see cref="UpstreamModel"/>.
/// Leases are short so that lost workers are noticed in seconds.
/// </summary>
public sealed class TrainingPlatform : IAsyncDisposable
{
    public const string AdminKey = "sk-ft-training-test-admin-key-0123456789abcdef";

    /// <summary>The upstream provider's model: it answers the last user message reversed word by word.</summary>
    public const string UpstreamModel = "echo-1";
    public static readonly TimeSpan Lease = TimeSpan.FromSeconds(5);

    private readonly List<ServiceHost<WorkerEntry>> _workers = [];

    private TrainingPlatform(PlatformTestEnvironment environment)
    {
        Environment = environment;
    }

    public PlatformTestEnvironment Environment { get; }

    public ServiceHost<DatasetsEntry> Datasets { get; private set; } = null!;

    public ServiceHost<TrainingEntry> Training { get; private set; } = null!;

    public ServiceHost<GatewayEntry> Gateway { get; private set; } = null!;

    public ServiceHost<EvaluationEntry> Evaluation { get; private set; } = null!;

    public EchoCompletionsServer Upstream { get; private set; } = null!;

    public Dictionary<string, string?> TrainingSettings { get; private set; } = null!;

    public Dictionary<string, string?> EvaluationSettings { get; private set; } = null!;

    public IReadOnlyList<ServiceHost<WorkerEntry>> Workers => _workers;

    public GatewayAdmin Admin => new(Gateway, AdminKey);

    public static async Task<TrainingPlatform> StartAsync(string name, int workers, int slotsPerWorker = 1)
    {
        var platform = new TrainingPlatform(await PlatformTestEnvironment.CreateAsync(name));
        var environment = platform.Environment;
        platform.Datasets = new ServiceHost<DatasetsEntry>(environment.SettingsFor("datasetsdb"));
        // The services that call each other (training and evaluation, the gateway and evaluation): the evaluation
        // service's addresses are reserved first so the others can be configured with them.
        var evaluationAddresses = ServiceAddresses.Reserve();
        platform.TrainingSettings = environment.SettingsFor("trainingdb", new Dictionary<string, IServiceEndpoints>
        {
            ["datasets"] = platform.Datasets,
            ["evaluation"] = evaluationAddresses,
        });
        platform.TrainingSettings["Training:Scheduler:Interval"] = "00:00:00.200";
        platform.TrainingSettings["Training:Scheduler:Lease"] = Lease.ToString();
        platform.TrainingSettings["Training:Scheduler:ClaimTimeout"] = "00:00:05";
        platform.TrainingSettings["Training:Scheduler:WorkerTimeout"] = "00:00:05";
        platform.TrainingSettings["Training:Scheduler:DefaultMaxConcurrentJobs"] = "10";
        platform.TrainingSettings["Training:Scheduler:EvaluationResend"] = "00:00:04";
        platform.Training = new ServiceHost<TrainingEntry>(platform.TrainingSettings);
        platform.Upstream = await EchoCompletionsServer.StartAsync();
        var gatewaySettings = environment.SettingsFor("gatewaydb", new Dictionary<string, IServiceEndpoints>
        {
            ["datasets"] = platform.Datasets,
            ["training"] = platform.Training,
            ["evaluation"] = evaluationAddresses,
        });
        gatewaySettings["Gateway:BootstrapAdminKey"] = AdminKey;
        platform.GatewayDatabase = gatewaySettings["ConnectionStrings:gatewaydb"]!;
        platform.Upstream.RouteModel(gatewaySettings, UpstreamModel);
        platform.Gateway = new ServiceHost<GatewayEntry>(gatewaySettings);
        _ = platform.Gateway.BaseAddress;
        var evaluationSettings = environment.SettingsFor("evaluationdb", new Dictionary<string, IServiceEndpoints>
        {
            ["datasets"] = platform.Datasets,
            ["gateway"] = platform.Gateway,
            ["training"] = platform.Training,
        });
        evaluationSettings["Evaluation:Runs:PollInterval"] = "00:00:00.200";
        evaluationSettings["Evaluation:Runs:FlushInterval"] = "00:00:00.100";
        evaluationSettings["Evaluation:Runs:Lease"] = Lease.ToString();
        platform.EvaluationSettings = evaluationSettings;
        platform.Evaluation = new ServiceHost<EvaluationEntry>(evaluationSettings, evaluationAddresses);
        _ = platform.Evaluation.BaseAddress;
        for (var i = 0; i < workers; i++)
        {
            platform.AddWorker(slotsPerWorker);
        }

        return platform;
    }

    /// <summary>The settings a worker process needs (for workers started as separate processes).</summary>
    public Dictionary<string, string?> WorkerSettings(int slots)
    {
        var settings = Environment.SettingsFor(null, new Dictionary<string, IServiceEndpoints>
        {
            ["datasets"] = Datasets,
            ["training"] = Training,
        });
        settings["Training:Worker:Slots"] = slots.ToString(System.Globalization.CultureInfo.InvariantCulture);
        settings["Training:Worker:PresenceInterval"] = "00:00:01";
        settings["Training:Worker:ValidationEverySteps"] = "2";
        return settings;
    }

    public ServiceHost<WorkerEntry> AddWorker(int slots = 1)
    {
        var worker = new ServiceHost<WorkerEntry>(WorkerSettings(slots));
        _ = worker.BaseAddress;
        _workers.Add(worker);
        return worker;
    }

    /// <summary>Stops the training service and starts a new one on the same addresses and database.</summary>
    public async Task RestartTrainingAsync()
    {
        var addresses = ServiceAddresses.Of(Training);
        await Training.DisposeAsync();
        Training = new ServiceHost<TrainingEntry>(TrainingSettings, addresses);
        _ = Training.BaseAddress;
    }

    /// <summary>Stops the evaluation service and starts a new one on the same addresses and database.</summary>
    public async Task RestartEvaluationAsync()
    {
        var addresses = await StopEvaluationAsync();
        StartEvaluation(addresses);
    }

    /// <summary>Stops the evaluation service; <see cref="StartEvaluation"/> brings it back where it was.</summary>
    public async Task<ServiceAddresses> StopEvaluationAsync()
    {
        var addresses = ServiceAddresses.Of(Evaluation);
        await Evaluation.DisposeAsync();
        return addresses;
    }

    public void StartEvaluation(ServiceAddresses addresses)
    {
        Evaluation = new ServiceHost<EvaluationEntry>(EvaluationSettings, addresses);
        _ = Evaluation.BaseAddress;
    }

    public FineTuningClient FineTuning(string key) => new OpenAIClient(new ApiKeyCredential(key), Options()).GetFineTuningClient();

    public OpenAIFileClient Files(string key) => new(new ApiKeyCredential(key), Options());

    public ChatClient Chat(string key, string model) => new(model, new ApiKeyCredential(key), Options());

    public EvaluationClient Evals(string key) => new OpenAIClient(new ApiKeyCredential(key), Options()).GetEvaluationClient();

    /// <summary>A JSON body for the SDK's protocol methods (its evaluation client takes and returns JSON).</summary>
    public static BinaryContent JsonBody(object body) => BinaryContent.Create(BinaryData.FromObjectAsJson(body));

    /// <summary>The JSON object a protocol method answered with.</summary>
    public static System.Text.Json.Nodes.JsonObject JsonOf(ClientResult result) =>
        System.Text.Json.Nodes.JsonNode.Parse(result.GetRawResponse().Content.ToString())!.AsObject();

    /// <summary>
    /// For console harnesses (the benches) hosting these services: WebApplicationFactory finds a service's content
    /// root from attributes test projects get generated; a harness names them through its documented variables.
    /// </summary>
    public static void UseSourceContentRoots()
    {
        var sources = Path.GetFullPath(Path.Combine(AppContext.BaseDirectory, "..", "..", "..", "..", "..", "src"));
        foreach (var service in new[] { "FineTunePlatform.Datasets", "FineTunePlatform.Training", "FineTunePlatform.Training.Worker", "FineTunePlatform.Evaluation", "FineTunePlatform.Gateway" })
        {
            System.Environment.SetEnvironmentVariable($"ASPNETCORE_TEST_CONTENTROOT_{service.ToUpperInvariant().Replace('.', '_')}", Path.Combine(sources, service));
        }
    }

    /// <summary>Polls an eval run through the SDK until it has finished (completed, failed or canceled).</summary>
    public async Task<System.Text.Json.Nodes.JsonObject> WaitForEvalRunAsync(string key, string evalId, string runId, TimeSpan? timeout = null)
    {
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(60));
        while (true)
        {
            var run = JsonOf(await Evals(key).GetEvaluationRunAsync(evalId, runId, new System.ClientModel.Primitives.RequestOptions()));
            if (run["status"]!.GetValue<string>() is "completed" or "failed" or "canceled")
            {
                return run;
            }

            Assert.True(DateTime.UtcNow < deadline, $"Eval run {runId} did not finish in time; last: {run.ToJsonString()}");
            await Task.Delay(100);
        }
    }

    public HttpClient Http(string key) => Admin.Client(key);

    private OpenAIClientOptions Options() => new() { Endpoint = new Uri(Gateway.BaseAddress, "v1") };

    /// <summary>A validated chat training file of `examples` short ticket-routing conversations.</summary>
    public async Task<string> UploadTrainingFileAsync(string key, int examples = 10)
    {
        var lines = new StringBuilder();
        for (var i = 0; i < examples; i++)
        {
            lines.Append(JsonSerializer.Serialize(new
            {
                messages = new object[]
                {
                    new { role = "user", content = $"ticket {i}: refund?" },
                    new { role = "assistant", content = i % 2 == 0 ? "billing" : "support" },
                },
            })).Append('\n');
        }

        var file = await Files(key).UploadFileAsync(BinaryData.FromString(lines.ToString()), "tickets.jsonl", FileUploadPurpose.FineTune);
#pragma warning disable CS0618 // Status is marked obsolete in the SDK but is still what OpenAI returns.
        Assert.Equal(FileStatus.Processed, file.Value.Status);
#pragma warning restore CS0618
        return file.Value.Id;
    }

    /// <summary>Creates a job through REST with explicit hyperparameters (the SDK's options cover the same fields).</summary>
    public async Task<JsonElement> CreateJobAsync(string key, string trainingFile, int epochs, string model = "local-nano", string? suffix = null, int batchSize = 1, object? metadata = null)
    {
        using var http = Http(key);
        var response = await http.PostAsJsonAsync("/v1/fine_tuning/jobs", new
        {
            model,
            training_file = trainingFile,
            suffix,
            seed = 7,
            metadata,
            method = new { type = "supervised", supervised = new { hyperparameters = new { n_epochs = epochs, batch_size = batchSize } } },
        });
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, body);
        return JsonDocument.Parse(body).RootElement.Clone();
    }

    public async Task<JsonElement> GetJobAsync(string key, string jobId)
    {
        using var http = Http(key);
        return JsonDocument.Parse(await http.GetStringAsync($"/v1/fine_tuning/jobs/{jobId}")).RootElement.Clone();
    }

    /// <summary>Polls the job until `done` holds for it, failing after `timeout`.</summary>
    public async Task<JsonElement> WaitForJobAsync(string key, string jobId, Func<JsonElement, bool> done, TimeSpan? timeout = null)
    {
        // A bound for a stuck job, not a speed target: the suite shares two cores between its assemblies.
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromMinutes(4));
        while (true)
        {
            var job = await GetJobAsync(key, jobId);
            if (done(job))
            {
                return job;
            }

            Assert.True(DateTime.UtcNow < deadline, $"Job {jobId} did not reach the expected state in time; last: {job}");
            await Task.Delay(100);
        }
    }

    public static bool Finished(JsonElement job) => job.GetProperty("status").GetString() is "succeeded" or "failed" or "cancelled";

    /// <summary>The gateway's database (usage, keys), for tests that play a lost message.</summary>
    public string GatewayDatabase { get; private set; } = null!;

    /// <summary>Rows of the training database, for assertions about history the API reports only in seconds.</summary>
    public Task<List<T>> QueryTrainingAsync<T>(string sql, Func<NpgsqlDataReader, T> read) =>
        QueryAsync(TrainingSettings["ConnectionStrings:trainingdb"]!, sql, read);

    public static async Task<List<T>> QueryAsync<T>(string connectionString, string sql, Func<NpgsqlDataReader, T> read)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        await using var reader = await command.ExecuteReaderAsync();
        var rows = new List<T>();
        while (await reader.ReadAsync())
        {
            rows.Add(read(reader));
        }

        return rows;
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var worker in _workers)
        {
            await worker.DisposeAsync();
        }

        await Evaluation.DisposeAsync();
        await Gateway.DisposeAsync();
        await Upstream.DisposeAsync();
        await Training.DisposeAsync();
        await Datasets.DisposeAsync();
    }
}
