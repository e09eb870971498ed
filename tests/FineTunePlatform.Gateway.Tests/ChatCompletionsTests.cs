using System.ClientModel;
using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using OpenAI.Chat;

namespace FineTunePlatform.Gateway.Tests;

public sealed class ChatCompletionsTests(GatewayFixture fixture) : IClassFixture<GatewayFixture>
{
    [Fact]
    public async Task Completes_through_the_upstream_provider_with_the_openai_sdk()
    {
        var (_, key) = await fixture.CreateProjectAsync("reader");

        ChatCompletion completion = await fixture.ChatClient(key).CompleteChatAsync([new UserChatMessage("route this ticket please")]);

        Assert.Equal("please ticket this route", completion.Content[0].Text);
        Assert.Equal(ChatFinishReason.Stop, completion.FinishReason);
        Assert.Equal(4, completion.Usage.InputTokenCount);
        Assert.Equal(4, completion.Usage.OutputTokenCount);
    }

    [Fact]
    public async Task Streams_chunk_by_chunk_and_withholds_usage_unless_asked()
    {
        var (_, key) = await fixture.CreateProjectAsync("member");
        var chunks = new List<string>();
        ChatTokenUsage? usage = null;

        await foreach (var update in fixture.ChatClient(key).CompleteChatStreamingAsync([new UserChatMessage("one two three four five")]))
        {
            chunks.AddRange(update.ContentUpdate.Select(part => part.Text));
            usage ??= update.Usage;
        }

        Assert.Equal("five four three two one", string.Concat(chunks));
        Assert.True(chunks.Count >= 5, $"expected a chunk per word, got {chunks.Count}");
        // The .NET SDK asks for usage on streams (stream_options.include_usage), so it is passed on.
        Assert.NotNull(usage);
        Assert.Equal(5, usage!.OutputTokenCount);

        using var http = fixture.CreateClient(key);
        var raw = await http.PostAsync(new Uri("/v1/chat/completions", UriKind.Relative), JsonContent.Create(new
        {
            model = GatewayFixture.UpstreamModel,
            stream = true,
            messages = new[] { new { role = "user", content = "a b" } },
        }));
        var events = (await raw.Content.ReadAsStringAsync()).Split("\n\n", StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal("data: [DONE]", events[^1].Trim());
        Assert.DoesNotContain(events, sse => sse.Contains("\"usage\"", StringComparison.Ordinal));
        Assert.True(fixture.Upstream.Received.Last()["stream_options"]!["include_usage"]!.GetValue<bool>(), "the gateway asks upstream for usage to record it");
    }

    [Theory]
    [InlineData("no-such-model")]
    [InlineData("ft:local-nano:proj_x:s:ftjob-x")]
    public async Task Unknown_models_are_404_model_not_found_like_openai(string model)
    {
        var (_, key) = await fixture.CreateProjectAsync("member");

        var error = await Assert.ThrowsAsync<ClientResultException>(() => fixture.ChatClient(key, model).CompleteChatAsync([new UserChatMessage("hi")]));

        Assert.Equal(404, error.Status);
        var body = JsonDocument.Parse(error.GetRawResponse()!.Content.ToString()).RootElement.GetProperty("error");
        Assert.Equal("model_not_found", body.GetProperty("code").GetString());
        Assert.Equal($"The model `{model}` does not exist or you do not have access to it.", body.GetProperty("message").GetString());
    }

    [Theory]
    [InlineData("{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", "model")]
    [InlineData("{\"model\":\"echo-1\",\"messages\":[]}", "messages")]
    [InlineData("{\"model\":\"echo-1\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"n\":2}", "n")]
    [InlineData("{\"model\":\"echo-1\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"temperature\":3}", "temperature")]
    [InlineData("{\"model\":\"echo-1\",\"messages\":[{\"content\":\"hi\"}]}", "messages[0].role")]
    [InlineData("{\"model\":\"echo-1\",\"messages\":[{\"role\":\"bogus\",\"content\":\"hi\"}]}", "messages[0].role")]
    [InlineData("{\"model\":\"local-nano\",\"messages\":[{\"role\":\"user\",\"content\":null}]}", "messages[0].content")]
    [InlineData("{\"model\":\"local-nano\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":5}]}]}", "messages[0].content")]
    [InlineData("{\"model\":\"local-nano\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"seed\":1.5}", "seed")]
    [InlineData("{\"model\":\"local-nano\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"max_tokens\":-1}", "max_tokens")]
    [InlineData("{\"model\":\"local-nano\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"max_completion_tokens\":2.5}", "max_completion_tokens")]
    [InlineData("{\"model\":\"local-nano\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"stop\":[1]}", "stop")]
    public async Task Bad_requests_are_400s_naming_the_parameter(string body, string param)
    {
        var (_, key) = await fixture.CreateProjectAsync("member");
        using var http = fixture.CreateClient(key);

        var response = await http.PostAsync(new Uri("/v1/chat/completions", UriKind.Relative), new StringContent(body, Encoding.UTF8, "application/json"));

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal(param, JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("error").GetProperty("param").GetString());
    }

    [Fact]
    public async Task Requests_per_minute_allow_the_limit_then_answer_429_with_openai_headers()
    {
        var (projectId, key) = await fixture.CreateProjectAsync("member");
        await fixture.SetProjectLimitsAsync(projectId, requestsPerMinute: 3, tokensPerMinute: null);
        using var http = fixture.CreateClient(key);
        var request = new { model = GatewayFixture.UpstreamModel, messages = new[] { new { role = "user", content = "hi" } } };

        for (var i = 0; i < 3; i++)
        {
            var allowed = await http.PostAsJsonAsync("/v1/chat/completions", request);
            Assert.Equal(HttpStatusCode.OK, allowed.StatusCode);
            Assert.Equal("3", allowed.Headers.GetValues("x-ratelimit-limit-requests").Single());
            Assert.Equal((2 - i).ToString(System.Globalization.CultureInfo.InvariantCulture), allowed.Headers.GetValues("x-ratelimit-remaining-requests").Single());
        }

        var limited = await http.PostAsJsonAsync("/v1/chat/completions", request);

        Assert.Equal(HttpStatusCode.TooManyRequests, limited.StatusCode);
        Assert.InRange(int.Parse(limited.Headers.GetValues("retry-after").Single(), System.Globalization.CultureInfo.InvariantCulture), 1, 21);
        Assert.Equal("0", limited.Headers.GetValues("x-ratelimit-remaining-requests").Single());
        var error = JsonDocument.Parse(await limited.Content.ReadAsStringAsync()).RootElement.GetProperty("error");
        Assert.Equal("rate_limit_exceeded", error.GetProperty("code").GetString());
        Assert.Equal("requests", error.GetProperty("type").GetString());
    }

    [Fact]
    public async Task A_key_limited_through_the_admin_api_is_held_to_its_own_limit_while_its_project_is_not()
    {
        var (projectId, unlimitedKey) = await fixture.CreateProjectAsync("member");
        using var admin = fixture.CreateClient(GatewayFixture.AdminKey);
        var created = await admin.PostAsJsonAsync($"/admin/v1/projects/{projectId}/keys", new { name = "batch", role = "member" });
        var batchKey = JsonDocument.Parse(await created.Content.ReadAsStringAsync()).RootElement;
        var set = await admin.PostAsJsonAsync($"/admin/v1/projects/{projectId}/keys/{batchKey.GetProperty("id").GetString()}/limits", new { requests_per_minute = 2 });
        Assert.Equal(HttpStatusCode.OK, set.StatusCode);
        Assert.Equal(2, JsonDocument.Parse(await set.Content.ReadAsStringAsync()).RootElement.GetProperty("requests_per_minute").GetInt32());

        var request = new { model = GatewayFixture.UpstreamModel, messages = new[] { new { role = "user", content = "hi" } } };
        using var limited = fixture.CreateClient(batchKey.GetProperty("value").GetString()!);
        Assert.Equal(HttpStatusCode.OK, (await limited.PostAsJsonAsync("/v1/chat/completions", request)).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await limited.PostAsJsonAsync("/v1/chat/completions", request)).StatusCode);
        Assert.Equal(HttpStatusCode.TooManyRequests, (await limited.PostAsJsonAsync("/v1/chat/completions", request)).StatusCode);
        using var other = fixture.CreateClient(unlimitedKey);
        Assert.Equal(HttpStatusCode.OK, (await other.PostAsJsonAsync("/v1/chat/completions", request)).StatusCode);

        // Mistakes: a limit that is not positive, a key of another project.
        var zero = await admin.PostAsJsonAsync($"/admin/v1/projects/{projectId}/keys/{batchKey.GetProperty("id").GetString()}/limits", new { tokens_per_minute = 0 });
        Assert.Equal(HttpStatusCode.BadRequest, zero.StatusCode);
        Assert.Contains("\"param\":\"tokens_per_minute\"", await zero.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        var (otherProject, _) = await fixture.CreateProjectAsync("member");
        var elsewhere = await admin.PostAsJsonAsync($"/admin/v1/projects/{otherProject}/keys/{batchKey.GetProperty("id").GetString()}/limits", new { requests_per_minute = 5 });
        Assert.Equal(HttpStatusCode.NotFound, elsewhere.StatusCode);
    }

    [Fact]
    public async Task Tokens_per_minute_count_the_prompt_and_the_completion_budget()
    {
        var (projectId, key) = await fixture.CreateProjectAsync("member");
        await fixture.SetProjectLimitsAsync(projectId, requestsPerMinute: null, tokensPerMinute: 1000);
        using var http = fixture.CreateClient(key);

        var small = await http.PostAsJsonAsync("/v1/chat/completions", new { model = GatewayFixture.UpstreamModel, max_tokens = 100, messages = new[] { new { role = "user", content = "hi" } } });
        // Fits the bucket's capacity, not what is left of it: a 429 (one larger than the capacity is a 400, EdgeRefusalsTests).
        var huge = await http.PostAsJsonAsync("/v1/chat/completions", new { model = GatewayFixture.UpstreamModel, max_tokens = 950, messages = new[] { new { role = "user", content = "hi" } } });

        Assert.Equal(HttpStatusCode.OK, small.StatusCode);
        Assert.Equal("1000", small.Headers.GetValues("x-ratelimit-limit-tokens").Single());
        Assert.Equal(HttpStatusCode.TooManyRequests, huge.StatusCode);
        Assert.Equal("tokens", JsonDocument.Parse(await huge.Content.ReadAsStringAsync()).RootElement.GetProperty("error").GetProperty("type").GetString());
    }

    [Fact]
    public async Task Usage_is_recorded_per_project_key_and_model_and_only_visible_to_its_project()
    {
        var (_, key) = await fixture.CreateProjectAsync("member");
        var (_, otherKey) = await fixture.CreateProjectAsync("member");
        await fixture.ChatClient(key).CompleteChatAsync([new UserChatMessage("one two three")]);
        await fixture.ChatClient(key).CompleteChatAsync([new UserChatMessage("four five")]);
        using var http = fixture.CreateClient(key);

        JsonElement row = default;
        for (var attempt = 0; attempt < 50; attempt++)
        {
            var usage = JsonDocument.Parse(await http.GetStringAsync(new Uri("/v1/usage", UriKind.Relative))).RootElement.GetProperty("data");
            row = usage.EnumerateArray().FirstOrDefault(entry => entry.GetProperty("num_model_requests").GetInt64() == 2);
            if (row.ValueKind == JsonValueKind.Object)
            {
                break;
            }

            await Task.Delay(100);
        }

        Assert.Equal(JsonValueKind.Object, row.ValueKind);
        Assert.Equal(GatewayFixture.UpstreamModel, row.GetProperty("model").GetString());
        Assert.Equal(5, row.GetProperty("input_tokens").GetInt64());
        Assert.Equal(5, row.GetProperty("output_tokens").GetInt64());
        using var other = fixture.CreateClient(otherKey);
        Assert.Empty(JsonDocument.Parse(await other.GetStringAsync(new Uri("/v1/usage", UriKind.Relative))).RootElement.GetProperty("data").EnumerateArray());
    }

    [Fact]
    public async Task A_revoked_key_fails_on_its_next_request()
    {
        var (projectId, key) = await fixture.CreateProjectAsync("member");
        await fixture.ChatClient(key).CompleteChatAsync([new UserChatMessage("warm the cache")]);
        using var admin = fixture.CreateClient(GatewayFixture.AdminKey);
        var keys = JsonDocument.Parse(await admin.GetStringAsync(new Uri($"/admin/v1/projects/{projectId}/keys", UriKind.Relative))).RootElement;
        var keyId = keys.GetProperty("data")[0].GetProperty("id").GetString();
        (await admin.PostAsync(new Uri($"/admin/v1/projects/{projectId}/keys/{keyId}/revoke", UriKind.Relative), null)).EnsureSuccessStatusCode();

        var error = await Assert.ThrowsAsync<ClientResultException>(() => fixture.ChatClient(key).CompleteChatAsync([new UserChatMessage("again")]));

        Assert.Equal(401, error.Status);
    }

    [Fact]
    public async Task Models_list_the_routed_models()
    {
        var (_, key) = await fixture.CreateProjectAsync("reader");
        var models = new global::OpenAI.Models.OpenAIModelClient(new ApiKeyCredential(key), new global::OpenAI.OpenAIClientOptions { Endpoint = new Uri(fixture.Gateway.BaseAddress, "v1") });

        global::OpenAI.Models.OpenAIModelCollection all = await models.GetModelsAsync();
        global::OpenAI.Models.OpenAIModel one = await models.GetModelAsync(GatewayFixture.UpstreamModel);

        Assert.Contains(all, model => model.Id == GatewayFixture.UpstreamModel);
        Assert.Equal("echo", one.OwnedBy);
    }
}
