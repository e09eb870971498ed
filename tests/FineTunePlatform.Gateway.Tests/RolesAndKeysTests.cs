using System.ClientModel;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using OpenAI.Chat;

namespace FineTunePlatform.Gateway.Tests;

/// <summary>Each role's allowed and forbidden calls, and a key's life: created by its owner, used, expired, revoked.</summary>
public sealed class RolesAndKeysTests(GatewayFixture fixture) : IClassFixture<GatewayFixture>
{
    [Theory]
    [InlineData("reader", HttpStatusCode.OK, HttpStatusCode.Forbidden, HttpStatusCode.Forbidden)]
    [InlineData("member", HttpStatusCode.OK, HttpStatusCode.OK, HttpStatusCode.Forbidden)]
    [InlineData("owner", HttpStatusCode.OK, HttpStatusCode.OK, HttpStatusCode.OK)]
    public async Task Roles_allow_infer_train_and_manage_in_turn(string role, HttpStatusCode infer, HttpStatusCode train, HttpStatusCode manage)
    {
        var (_, key) = await fixture.CreateProjectAsync(role);
        using var http = fixture.CreateClient(key);

        var chat = await http.PostAsJsonAsync("/v1/chat/completions", new { model = GatewayFixture.UpstreamModel, messages = new[] { new { role = "user", content = "hi" } } });
        // Uploading is a training-side act; the body is empty on purpose: authorization comes first.
        var upload = await http.PostAsync(new Uri("/v1/uploads", UriKind.Relative), JsonContent.Create(new { filename = "x.jsonl", purpose = "fine-tune", bytes = -1 }));
        var keys = await http.GetAsync(new Uri("/v1/project/api_keys", UriKind.Relative));

        Assert.Equal(infer, chat.StatusCode);
        Assert.Equal(train, upload.StatusCode == HttpStatusCode.BadRequest ? HttpStatusCode.OK : upload.StatusCode);
        Assert.Equal(manage, keys.StatusCode);
        if (manage == HttpStatusCode.Forbidden)
        {
            var error = JsonDocument.Parse(await keys.Content.ReadAsStringAsync()).RootElement.GetProperty("error");
            Assert.Equal("insufficient_permissions", error.GetProperty("code").GetString());
        }
    }

    [Fact]
    public async Task Owners_create_keys_that_work_once_shown_and_revoke_them()
    {
        var (projectId, ownerKey) = await fixture.CreateProjectAsync("owner");
        using var owner = fixture.CreateClient(ownerKey);

        var created = JsonDocument.Parse(await (await owner.PostAsJsonAsync("/v1/project/api_keys", new { name = "ci", role = "reader" })).Content.ReadAsStringAsync()).RootElement;
        var value = created.GetProperty("value").GetString()!;
        ChatCompletion answer = await fixture.ChatClient(value).CompleteChatAsync([new UserChatMessage("a b")]);
        Assert.Equal("b a", answer.Content[0].Text);

        var listed = JsonDocument.Parse(await owner.GetStringAsync(new Uri("/v1/project/api_keys", UriKind.Relative))).RootElement.GetProperty("data");
        Assert.All(listed.EnumerateArray(), key => Assert.Equal(JsonValueKind.Null, key.GetProperty("value").ValueKind));
        Assert.Contains(listed.EnumerateArray(), key => key.GetProperty("id").GetString() == created.GetProperty("id").GetString() && key.GetProperty("last_used_at").ValueKind == JsonValueKind.Number);

        (await owner.PostAsync(new Uri($"/v1/project/api_keys/{created.GetProperty("id").GetString()}/revoke", UriKind.Relative), null)).EnsureSuccessStatusCode();
        Assert.Equal(401, (await Assert.ThrowsAsync<ClientResultException>(() => fixture.ChatClient(value).CompleteChatAsync([new UserChatMessage("a")]))).Status);

        // Another project's key is out of reach: revoking it from here is a 404.
        var (otherProject, _) = await fixture.CreateProjectAsync("owner");
        using var admin = fixture.CreateClient(GatewayFixture.AdminKey);
        var otherKeyId = JsonDocument.Parse(await admin.GetStringAsync(new Uri($"/admin/v1/projects/{otherProject}/keys", UriKind.Relative))).RootElement.GetProperty("data")[0].GetProperty("id").GetString();
        Assert.Equal(HttpStatusCode.NotFound, (await owner.PostAsync(new Uri($"/v1/project/api_keys/{otherKeyId}/revoke", UriKind.Relative), null)).StatusCode);
        _ = projectId;
    }

    [Fact]
    public async Task Keys_stop_working_when_they_expire()
    {
        var (_, ownerKey) = await fixture.CreateProjectAsync("owner");
        using var owner = fixture.CreateClient(ownerKey);
        // Long enough for the first call on a loaded machine (the suite shares 2 cores), short enough to wait out.
        var expiresAt = DateTimeOffset.UtcNow.AddSeconds(10).ToUnixTimeSeconds() + 1;
        var created = JsonDocument.Parse(await (await owner.PostAsJsonAsync("/v1/project/api_keys", new { name = "short", role = "member", expires_at = expiresAt })).Content.ReadAsStringAsync()).RootElement;
        var value = created.GetProperty("value").GetString()!;

        await fixture.ChatClient(value).CompleteChatAsync([new UserChatMessage("still valid")]);
        // Never a negative delay, however long the first call took.
        await Task.Delay(TimeSpan.FromSeconds(Math.Max(0, expiresAt - DateTimeOffset.UtcNow.ToUnixTimeSeconds() + 1)));

        var error = await Assert.ThrowsAsync<ClientResultException>(() => fixture.ChatClient(value).CompleteChatAsync([new UserChatMessage("expired")]));
        Assert.Equal(401, error.Status);
        Assert.Contains("expired", error.GetRawResponse()!.Content.ToString(), StringComparison.Ordinal);
    }
}
