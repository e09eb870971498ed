using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;

namespace FineTunePlatform.Gateway.Tests;

/// <summary>
/// Every endpoint that takes JSON reads it one way, strictly: invalid UTF-8, an escaped lone surrogate and a key
/// given twice (at the top or nested) are a 400 in OpenAI's shape naming the place, never a 500 and never last-wins.
/// </summary>
public sealed class MalformedJsonTests(GatewayFixture fixture) : IClassFixture<GatewayFixture>
{
    /// <summary>Each JSON endpoint with the role that may call it ("admin": the platform-admin key).</summary>
    public static TheoryData<string, string> JsonEndpoints => new()
    {
        { "/v1/chat/completions", "reader" },
        { "/v1/fine_tuning/jobs", "member" },
        { "/v1/fine_tuning/checkpoints/ft:local-nano:proj_x:s:ftjob-x/permissions", "owner" },
        { "/v1/evals", "member" },
        { "/v1/evals/eval_x", "member" },
        { "/v1/evals/eval_x/runs", "member" },
        { "/v1/uploads", "member" },
        { "/v1/uploads/upload_x/complete", "member" },
        { "/v1/project/api_keys", "owner" },
        { "/admin/v1/projects", "admin" },
        { "/admin/v1/projects/{project}/keys", "admin" },
        { "/admin/v1/projects/{project}/limits", "admin" },
        { "/admin/v1/projects/{project}/training-quota", "admin" },
    };

    /// <summary>Each malformation as raw bytes, with the param the answer must name.</summary>
    private static readonly (string Name, byte[] Body, string Param)[] Malformations =
    [
        ("invalid UTF-8", [.. "{\"model\":\""u8, 0xff, 0xfe, .. "\",\"name\":\"x\"}"u8], "model"),
        ("lone surrogate", "{\"model\":\"\\ud800\",\"name\":\"x\"}"u8.ToArray(), "model"),
        ("duplicate key", "{\"model\":\"a\",\"model\":\"b\"}"u8.ToArray(), "model"),
        ("nested duplicate key", "{\"metadata\":{\"team\":\"a\",\"team\":\"b\"}}"u8.ToArray(), "metadata.team"),
        ("duplicate key after unescaping", "{\"name\":\"a\",\"n\\u0061me\":\"b\"}"u8.ToArray(), "name"),
    ];

    [Theory]
    [MemberData(nameof(JsonEndpoints))]
    public async Task Malformed_bodies_are_400s_naming_the_problem(string path, string role)
    {
        var (projectId, roleKey) = await fixture.CreateProjectAsync(role == "admin" ? "member" : role);
        var key = role == "admin" ? GatewayFixture.AdminKey : roleKey;
        using var http = fixture.CreateClient(key);
        foreach (var (name, body, param) in Malformations)
        {
            var response = await PostAsync(http, path.Replace("{project}", projectId, StringComparison.Ordinal), body);
            var text = await response.Content.ReadAsStringAsync();
            Assert.True(response.StatusCode == HttpStatusCode.BadRequest, $"{name} on {path}: {(int)response.StatusCode} {text}");
            var error = JsonDocument.Parse(text).RootElement.GetProperty("error");
            Assert.Equal("invalid_request_error", error.GetProperty("type").GetString());
            Assert.Equal(param, error.GetProperty("param").GetString());
            Assert.True(error.TryGetProperty("code", out _), "OpenAI's error has all four keys");
        }
    }

    [Fact]
    public async Task A_role_given_twice_creates_no_key_of_either_role()
    {
        var (projectId, ownerKey) = await fixture.CreateProjectAsync("owner");
        using var owner = fixture.CreateClient(ownerKey);
        using var admin = fixture.CreateClient(GatewayFixture.AdminKey);
        var before = await KeyCountAsync(admin, projectId);

        foreach (var body in (string[])["{\"name\":\"a\",\"role\":\"reader\",\"role\":\"owner\"}", "{\"name\":\"a\",\"role\":\"reader\",\"Role\":\"owner\"}"])
        {
            var viaOwner = await PostAsync(owner, "/v1/project/api_keys", Encoding.UTF8.GetBytes(body));
            var viaAdmin = await PostAsync(admin, $"/admin/v1/projects/{projectId}/keys", Encoding.UTF8.GetBytes(body));
            Assert.Equal(HttpStatusCode.BadRequest, viaOwner.StatusCode);
            Assert.Equal(HttpStatusCode.BadRequest, viaAdmin.StatusCode);
            Assert.Contains("role", await viaOwner.Content.ReadAsStringAsync(), StringComparison.OrdinalIgnoreCase);
        }

        var projects = await admin.GetStringAsync(new Uri("/admin/v1/projects", UriKind.Relative));
        var created = await PostAsync(admin, "/admin/v1/projects", "{\"name\":\"dup-a\",\"name\":\"dup-b\"}"u8.ToArray());
        Assert.Equal(HttpStatusCode.BadRequest, created.StatusCode);
        Assert.Equal(before, await KeyCountAsync(admin, projectId));
        Assert.Equal(projects, await admin.GetStringAsync(new Uri("/admin/v1/projects", UriKind.Relative)));
    }

    [Fact]
    public async Task A_lone_surrogate_deep_in_a_chat_request_names_its_place()
    {
        var (_, key) = await fixture.CreateProjectAsync("reader");
        using var http = fixture.CreateClient(key);
        var relayedBefore = fixture.Upstream.Received.Count;
        var response = await PostAsync(http, "/v1/chat/completions",
            Encoding.UTF8.GetBytes($"{{\"model\":\"{GatewayFixture.UpstreamModel}\",\"messages\":[{{\"role\":\"user\",\"content\":\"hi \\udc00 there\"}}]}}"));
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal("messages[0].content", JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("error").GetProperty("param").GetString());
        Assert.Equal(relayedBefore, fixture.Upstream.Received.Count);
    }

    private static Task<HttpResponseMessage> PostAsync(HttpClient http, string path, byte[] body)
    {
        var content = new ByteArrayContent(body);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        return http.PostAsync(new Uri(path, UriKind.Relative), content);
    }

    private static async Task<int> KeyCountAsync(HttpClient admin, string projectId) =>
        JsonDocument.Parse(await admin.GetStringAsync(new Uri($"/admin/v1/projects/{projectId}/keys", UriKind.Relative))).RootElement.GetProperty("data").GetArrayLength();
}
