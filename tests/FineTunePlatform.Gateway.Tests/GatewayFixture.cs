using FineTunePlatform.Gateway.Grpc;
using FineTunePlatform.Testing;

namespace FineTunePlatform.Gateway.Tests;

/// <summary>A gateway on a real socket with its own database, plus the platform-admin key it was bootstrapped with.</summary>
public sealed class GatewayFixture : IAsyncLifetime
{
    public const string AdminKey = "sk-ft-test-bootstrap-admin-key-0123456789abcdef";

    /// <summary>The upstream provider's model id routed to the echo server.</summary>
    public const string UpstreamModel = "echo-1";

    public ServiceHost<PlatformInfoService> Gateway { get; private set; } = null!;

    /// <summary>The model registry the gateway asks about models that are not an upstream provider's.</summary>
    public ServiceHost<Training.Grpc.PlatformInfoService> Training { get; private set; } = null!;

    public EchoCompletionsServer Upstream { get; private set; } = null!;

    /// <summary>The secret platform services present on internal gRPC calls.</summary>
    public string InternalToken { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        Upstream = await EchoCompletionsServer.StartAsync();
        var platform = await PlatformTestEnvironment.CreateAsync("gateway");
        InternalToken = platform.InternalToken;
        Training = new ServiceHost<Training.Grpc.PlatformInfoService>(platform.SettingsFor("trainingdb"));
        Gateway = new ServiceHost<PlatformInfoService>(SettingsWithUpstream(
            platform.SettingsFor("gatewaydb", new Dictionary<string, IServiceEndpoints> { ["training"] = Training }), Upstream));
        _ = Gateway.BaseAddress;
    }

    public static Dictionary<string, string?> SettingsWithUpstream(Dictionary<string, string?> settings, EchoCompletionsServer upstream)
    {
        settings["Gateway:BootstrapAdminKey"] = AdminKey;
        upstream.RouteModel(settings, UpstreamModel);
        return settings;
    }

    public async Task DisposeAsync()
    {
        await Gateway.DisposeAsync();
        await Training.DisposeAsync();
        await Upstream.DisposeAsync();
    }

    public GatewayAdmin Admin => new(Gateway, AdminKey);

    public HttpClient CreateClient(string? apiKey) => Admin.Client(apiKey);

    public Task<(string ProjectId, string ApiKey)> CreateProjectAsync(string role = "owner") => Admin.CreateProjectAsync(role);

    public global::OpenAI.Chat.ChatClient ChatClient(string apiKey, string model = UpstreamModel) =>
        new(model, new System.ClientModel.ApiKeyCredential(apiKey), new global::OpenAI.OpenAIClientOptions { Endpoint = new Uri(Gateway.BaseAddress, "v1") });

    public Task SetProjectLimitsAsync(string projectId, int? requestsPerMinute, int? tokensPerMinute) =>
        Admin.SetProjectLimitsAsync(projectId, requestsPerMinute, tokensPerMinute);
}
