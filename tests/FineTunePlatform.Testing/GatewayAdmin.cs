using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;

namespace FineTunePlatform.Testing;

/// <summary>
/// What tests do as the platform team and as a team against a running gateway: HTTP clients with a key, and
/// projects with keys created through the admin API (the same calls an operator makes).
/// </summary>
public sealed class GatewayAdmin(IServiceEndpoints gateway, string adminKey)
{
    public HttpClient Client(string? apiKey)
    {
        var client = new HttpClient { BaseAddress = gateway.BaseAddress };
        if (apiKey is not null)
        {
            client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", apiKey);
        }

        return client;
    }

    /// <summary>Creates a project and a key with the given role; returns the project id and the key's value.</summary>
    public async Task<(string ProjectId, string Key)> CreateProjectAsync(string role)
    {
        using var admin = Client(adminKey);
        var project = await admin.PostAsJsonAsync("/admin/v1/projects", new { name = "team-" + Guid.NewGuid().ToString("N")[..8] });
        project.EnsureSuccessStatusCode();
        var projectId = JsonDocument.Parse(await project.Content.ReadAsStringAsync()).RootElement.GetProperty("id").GetString()!;
        var key = await admin.PostAsJsonAsync($"/admin/v1/projects/{projectId}/keys", new { name = "tests", role });
        key.EnsureSuccessStatusCode();
        return (projectId, JsonDocument.Parse(await key.Content.ReadAsStringAsync()).RootElement.GetProperty("value").GetString()!);
    }

    public async Task SetProjectLimitsAsync(string projectId, int? requestsPerMinute, int? tokensPerMinute)
    {
        using var admin = Client(adminKey);
        (await admin.PostAsJsonAsync($"/admin/v1/projects/{projectId}/limits", new { requests_per_minute = requestsPerMinute, tokens_per_minute = tokensPerMinute })).EnsureSuccessStatusCode();
    }

    public async Task SetTrainingQuotaAsync(string projectId, int? priority = null, int? maxConcurrentJobs = null, long? trainingTokensPerDay = null)
    {
        using var admin = Client(adminKey);
        var response = await admin.PostAsJsonAsync($"/admin/v1/projects/{projectId}/training-quota", new
        {
            priority,
            max_concurrent_jobs = maxConcurrentJobs,
            training_tokens_per_day = trainingTokensPerDay,
        });
        response.EnsureSuccessStatusCode();
    }
}
