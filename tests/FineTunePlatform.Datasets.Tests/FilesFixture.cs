using System.ClientModel;
using FineTunePlatform.Testing;
using Npgsql;
using OpenAI;
using OpenAI.Files;

namespace FineTunePlatform.Datasets.Tests;

/// <summary>
/// The dataset service and a gateway in front of it, each on real sockets with its own database, and two projects
/// (teams) with member keys, created through the admin API.
/// </summary>
public sealed class FilesFixture : IAsyncLifetime
{
    public const string AdminKey = "sk-ft-datasets-test-admin-key-0123456789abcdef";

    /// <summary>Small enough that the over-limit test stays quick, large enough for the 10 MB line.</summary>
    public const long MaxFileBytes = 16L * 1024 * 1024;

    public ServiceHost<Grpc.PlatformInfoService> Datasets { get; private set; } = null!;

    public ServiceHost<Gateway.Grpc.PlatformInfoService> Gateway { get; private set; } = null!;

    public string DatasetsDatabase { get; private set; } = null!;

    /// <summary>The RabbitMQ virtual host the services publish on.</summary>
    public string RabbitMq { get; private set; } = null!;

    public (string ProjectId, string Key) TeamA { get; private set; }

    public (string ProjectId, string Key) TeamB { get; private set; }

    public async Task InitializeAsync()
    {
        var platform = await PlatformTestEnvironment.CreateAsync("files");
        RabbitMq = platform.RabbitMq;
        var datasetsSettings = platform.SettingsFor("datasetsdb");
        datasetsSettings["Datasets:Limits:MaxFileBytes"] = MaxFileBytes.ToString(System.Globalization.CultureInfo.InvariantCulture);
        DatasetsDatabase = datasetsSettings["ConnectionStrings:datasetsdb"]!;
        Datasets = new ServiceHost<Grpc.PlatformInfoService>(datasetsSettings);

        var gatewaySettings = platform.SettingsFor("gatewaydb", new Dictionary<string, IServiceEndpoints> { ["datasets"] = Datasets });
        gatewaySettings["Gateway:BootstrapAdminKey"] = AdminKey;
        gatewaySettings["Datasets:Limits:MaxFileBytes"] = datasetsSettings["Datasets:Limits:MaxFileBytes"];
        Gateway = new ServiceHost<Gateway.Grpc.PlatformInfoService>(gatewaySettings);

        TeamA = await CreateProjectAsync("member");
        TeamB = await CreateProjectAsync("member");
    }

    public async Task DisposeAsync()
    {
        await Gateway.DisposeAsync();
        await Datasets.DisposeAsync();
    }

    public OpenAIFileClient FileClient(string key) => new(new ApiKeyCredential(key), new OpenAIClientOptions { Endpoint = new Uri(Gateway.BaseAddress, "v1") });

    public HttpClient HttpClient(string key) => new GatewayAdmin(Gateway, AdminKey).Client(key);

    public Task<(string ProjectId, string Key)> CreateProjectAsync(string role) => new GatewayAdmin(Gateway, AdminKey).CreateProjectAsync(role);

    /// <summary>Rows of stored content in the dataset service's database: proves nothing half-stored remains.</summary>
    /// <summary>A project's file rows, finished or not (the API lists only finished ones).</summary>
    public async Task<long> CountFileRowsAsync(string projectId)
    {
        await using var connection = new NpgsqlConnection(DatasetsDatabase);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand("SELECT count(*) FROM files WHERE \"ProjectId\" = @project", connection);
        command.Parameters.AddWithValue("project", projectId);
        return (long)(await command.ExecuteScalarAsync())!;
    }

    public async Task<long> CountStoredChunksAsync()
    {
        await using var connection = new NpgsqlConnection(DatasetsDatabase);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand("SELECT count(*) FROM content_chunks", connection);
        return (long)(await command.ExecuteScalarAsync())!;
    }
}
