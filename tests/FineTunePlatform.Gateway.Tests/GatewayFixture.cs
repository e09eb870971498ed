using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using FineTunePlatform.Gateway.Grpc;
using FineTunePlatform.Testing;

namespace FineTunePlatform.Gateway.Tests;

/// <summary>A gateway on a real socket with its own database, plus the platform-admin key it was bootstrapped with.</summary>
public sealed class GatewayFixture : IAsyncLifetime
{
    public const string AdminKey = "sk-ft-test-bootstrap-admin-key-0123456789abcdef";

    public ServiceHost<PlatformInfoService> Gateway { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        var platform = await PlatformTestEnvironment.CreateAsync("gateway");
        var settings = platform.SettingsFor("gatewaydb");
        settings["Gateway:BootstrapAdminKey"] = AdminKey;
        Gateway = new ServiceHost<PlatformInfoService>(settings);
        _ = Gateway.BaseAddress;
    }

    public async Task DisposeAsync() => await Gateway.DisposeAsync();

    public HttpClient CreateClient(string? apiKey)
    {
        var client = Gateway.CreateHttpClient();
        if (apiKey is not null)
        {
            client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", apiKey);
        }

        return client;
    }

    /// <summary>Creates a project through the admin API and returns its id and a key with the given role.</summary>
    public async Task<(string ProjectId, string ApiKey)> CreateProjectAsync(string role = "owner")
    {
        using var admin = CreateClient(AdminKey);
        var project = await admin.PostAsJsonAsync("/admin/v1/projects", new { name = "team-" + Guid.NewGuid().ToString("N")[..8] });
        project.EnsureSuccessStatusCode();
        var projectId = JsonDocument.Parse(await project.Content.ReadAsStringAsync()).RootElement.GetProperty("id").GetString()!;
        var key = await admin.PostAsJsonAsync($"/admin/v1/projects/{projectId}/keys", new { name = "ci", role });
        key.EnsureSuccessStatusCode();
        var value = JsonDocument.Parse(await key.Content.ReadAsStringAsync()).RootElement.GetProperty("value").GetString()!;
        return (projectId, value);
    }
}
