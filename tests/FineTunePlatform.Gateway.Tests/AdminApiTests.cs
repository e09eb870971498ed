using System.Net;
using System.Net.Http.Json;
using System.Text.Json;

namespace FineTunePlatform.Gateway.Tests;

public sealed class AdminApiTests(GatewayFixture fixture) : IClassFixture<GatewayFixture>
{
    [Fact]
    public async Task Bootstrap_admin_key_creates_a_project_and_a_key_shown_once()
    {
        var (projectId, apiKey) = await fixture.CreateProjectAsync("member");

        Assert.StartsWith("proj_", projectId, StringComparison.Ordinal);
        Assert.StartsWith("sk-ft-", apiKey, StringComparison.Ordinal);

        using var admin = fixture.CreateClient(GatewayFixture.AdminKey);
        var keys = JsonDocument.Parse(await admin.GetStringAsync(new Uri($"/admin/v1/projects/{projectId}/keys", UriKind.Relative))).RootElement;
        var listed = Assert.Single(keys.GetProperty("data").EnumerateArray());
        Assert.Equal(JsonValueKind.Null, listed.GetProperty("value").ValueKind);
        Assert.Equal("member", listed.GetProperty("role").GetString());
        Assert.EndsWith(apiKey[^4..], listed.GetProperty("redacted_value").GetString(), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("team\u0000a")]
    [InlineData("a-name-longer-than-the-column-allows")]
    public async Task Names_that_cannot_be_stored_are_a_400_for_projects_and_keys(string name)
    {
        name = name.StartsWith("a-name", StringComparison.Ordinal) ? new string('n', 257) : name;
        var (projectId, ownerKey) = await fixture.CreateProjectAsync("owner");
        using var admin = fixture.CreateClient(GatewayFixture.AdminKey);
        using var owner = fixture.CreateClient(ownerKey);

        foreach (var response in new[]
        {
            await admin.PostAsJsonAsync("/admin/v1/projects", new { name }),
            await admin.PostAsJsonAsync($"/admin/v1/projects/{projectId}/keys", new { name, role = "member" }),
            await owner.PostAsJsonAsync("/v1/project/api_keys", new { name, role = "member" }),
        })
        {
            var body = await response.Content.ReadAsStringAsync();
            Assert.True(response.StatusCode == HttpStatusCode.BadRequest, body);
            Assert.Equal("name", JsonDocument.Parse(body).RootElement.GetProperty("error").GetProperty("param").GetString());
        }
    }

    [Theory]
    [InlineData(1L)]
    [InlineData(99_999_999_999_999L)]
    public async Task A_key_expiry_in_the_past_or_beyond_the_calendar_is_a_400(long expiresAt)
    {
        var (projectId, _) = await fixture.CreateProjectAsync("owner");
        using var admin = fixture.CreateClient(GatewayFixture.AdminKey);
        var response = await admin.PostAsJsonAsync($"/admin/v1/projects/{projectId}/keys", new { name = "k", role = "member", expires_at = expiresAt });
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.BadRequest, body);
        Assert.Equal("expires_at", JsonDocument.Parse(body).RootElement.GetProperty("error").GetProperty("param").GetString());
    }

    [Fact]
    public async Task Project_keys_cannot_use_the_admin_api()
    {
        var (_, ownerKey) = await fixture.CreateProjectAsync("owner");
        using var owner = fixture.CreateClient(ownerKey);

        var response = await owner.PostAsJsonAsync("/admin/v1/projects", new { name = "sneaky" });

        Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
        var error = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("error");
        Assert.Equal("insufficient_permissions", error.GetProperty("code").GetString());
    }

    [Theory]
    [InlineData(null, null)]
    [InlineData("sk-ft-not-a-real-key-0000000000000000", "invalid_api_key")]
    public async Task Missing_or_unknown_keys_get_openai_401s(string? apiKey, string? expectedCode)
    {
        using var client = fixture.CreateClient(apiKey);

        var response = await client.GetAsync(new Uri("/admin/v1/projects", UriKind.Relative));

        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        var error = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("error");
        Assert.Equal("invalid_request_error", error.GetProperty("type").GetString());
        Assert.Equal(JsonValueKind.Null, error.GetProperty("param").ValueKind);
        Assert.Equal(expectedCode, error.GetProperty("code").GetString());
        Assert.False(string.IsNullOrEmpty(error.GetProperty("message").GetString()));
    }

    [Fact]
    public async Task Revoked_keys_stop_working()
    {
        var (projectId, apiKey) = await fixture.CreateProjectAsync("owner");
        using var admin = fixture.CreateClient(GatewayFixture.AdminKey);
        var keys = JsonDocument.Parse(await admin.GetStringAsync(new Uri($"/admin/v1/projects/{projectId}/keys", UriKind.Relative))).RootElement;
        var keyId = keys.GetProperty("data")[0].GetProperty("id").GetString();

        (await admin.PostAsync(new Uri($"/admin/v1/projects/{projectId}/keys/{keyId}/revoke", UriKind.Relative), null)).EnsureSuccessStatusCode();

        using var revoked = fixture.CreateClient(apiKey);
        var response = await revoked.GetAsync(new Uri("/admin/v1/projects", UriKind.Relative));
        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        Assert.Contains("revoked", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }
}

public sealed class UnknownRequestTests(GatewayFixture fixture) : IClassFixture<GatewayFixture>
{
    [Theory]
    [InlineData("GET", "/v1/no-such-resource", 404)]
    [InlineData("POST", "/v1/uploads", 400)]
    public async Task Framework_errors_come_in_openai_shape(string method, string path, int status)
    {
        var (_, key) = await fixture.CreateProjectAsync("member");
        using var http = fixture.CreateClient(key);
        using var request = new HttpRequestMessage(new HttpMethod(method), new Uri(path, UriKind.Relative));
        if (method == "POST")
        {
            request.Content = new StringContent("{not json", System.Text.Encoding.UTF8, "application/json");
        }

        var response = await http.SendAsync(request);

        Assert.Equal(status, (int)response.StatusCode);
        var error = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("error");
        Assert.Equal("invalid_request_error", error.GetProperty("type").GetString());
        Assert.False(string.IsNullOrEmpty(error.GetProperty("message").GetString()));
    }
}
