// The SDK marks its stored-completions methods experimental; they are what our users call us with.
#pragma warning disable OPENAI001
using System.ClientModel;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.DependencyInjection;
using OpenAI.Chat;

namespace FineTunePlatform.Gateway.Tests;

/// <summary>
/// Stored chat completions (`store: true`) through the official SDK's ChatClient methods, and raw HTTP where the
/// SDK cannot send what is tested (bad parameters, cursors by hand).
/// </summary>
public sealed class StoredCompletionsTests(GatewayFixture fixture) : IClassFixture<GatewayFixture>
{
    private static ChatCompletionOptions Stored(params (string Key, string Value)[] metadata)
    {
        var options = new ChatCompletionOptions { StoredOutputEnabled = true };
        foreach (var (key, value) in metadata)
        {
            options.Metadata[key] = value;
        }

        return options;
    }

    /// <summary>Stored completions are written just after the answer (off the request path): wait until it is readable.</summary>
    private static async Task<ChatCompletion> WaitForStoredAsync(ChatClient chat, string completionId)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (true)
        {
            try
            {
                return (await chat.GetChatCompletionAsync(completionId)).Value;
            }
            catch (ClientResultException ex) when (ex.Status == 404 && DateTime.UtcNow < deadline)
            {
                await Task.Delay(50);
            }
        }
    }

    private static async Task<List<ChatCompletion>> ListAllAsync(ChatClient chat, ChatCompletionCollectionOptions? options = null)
    {
        var all = new List<ChatCompletion>();
        await foreach (var completion in chat.GetChatCompletionsAsync(options ?? new ChatCompletionCollectionOptions()))
        {
            all.Add(completion);
        }

        return all;
    }

    [Fact]
    public async Task Store_then_get_messages_update_and_delete_through_the_openai_sdk()
    {
        var (_, key) = await fixture.CreateProjectAsync("member");
        var chat = fixture.ChatClient(key);

        ChatCompletion answered = await chat.CompleteChatAsync(
            [new SystemChatMessage("You route tickets."), new UserChatMessage("route this ticket please")], Stored(("topic", "billing")));
        Assert.StartsWith("chatcmpl-", answered.Id, StringComparison.Ordinal);
        Assert.NotEqual("chatcmpl-echo", answered.Id); // the gateway's own id, not the provider's

        var stored = await WaitForStoredAsync(chat, answered.Id);
        Assert.Equal(answered.Id, stored.Id);
        Assert.Equal("please ticket this route", stored.Content[0].Text);
        Assert.Equal(GatewayFixture.UpstreamModel, stored.Model);
        Assert.Equal(answered.CreatedAt, stored.CreatedAt);
        Assert.Equal(4, stored.Usage.OutputTokenCount);

        using var http = fixture.CreateClient(key);
        var raw = JsonNode.Parse(await http.GetStringAsync($"/v1/chat/completions/{answered.Id}"))!;
        Assert.Equal("chat.completion", raw["object"]!.GetValue<string>());
        Assert.Equal("billing", raw["metadata"]!["topic"]!.GetValue<string>());
        Assert.StartsWith("req_", raw["request_id"]!.GetValue<string>(), StringComparison.Ordinal);

        var messages = new List<ChatCompletionMessageListDatum>();
        await foreach (var message in chat.GetChatCompletionMessagesAsync(answered.Id))
        {
            messages.Add(message);
        }

        Assert.Equal(["You route tickets.", "route this ticket please"], messages.Select(message => message.Content));
        Assert.Equal([$"{answered.Id}-0", $"{answered.Id}-1"], messages.Select(message => message.Id));

        ChatCompletion updated = await chat.UpdateChatCompletionAsync(answered.Id, new Dictionary<string, string> { ["topic"] = "refunds", ["reviewed"] = "yes" });
        Assert.Equal(answered.Id, updated.Id);
        raw = JsonNode.Parse(await http.GetStringAsync($"/v1/chat/completions/{answered.Id}"))!;
        Assert.Equal("refunds", raw["metadata"]!["topic"]!.GetValue<string>());
        Assert.Equal("yes", raw["metadata"]!["reviewed"]!.GetValue<string>());

        var byMetadata = await ListAllAsync(chat, new ChatCompletionCollectionOptions { Metadata = { ["topic"] = "refunds" } });
        Assert.Equal([answered.Id], byMetadata.Select(completion => completion.Id));
        Assert.Empty(await ListAllAsync(chat, new ChatCompletionCollectionOptions { Metadata = { ["topic"] = "billing" } }));

        ChatCompletionDeletionResult deleted = await chat.DeleteChatCompletionAsync(answered.Id);
        Assert.True(deleted.Deleted);
        Assert.Equal(answered.Id, deleted.ChatCompletionId);
        var gone = await Assert.ThrowsAsync<ClientResultException>(() => chat.GetChatCompletionAsync(answered.Id));
        Assert.Equal(404, gone.Status);
        var again = await http.DeleteAsync($"/v1/chat/completions/{answered.Id}");
        Assert.Equal(HttpStatusCode.NotFound, again.StatusCode);
        Assert.Equal("completion_id", JsonNode.Parse(await again.Content.ReadAsStringAsync())!["error"]!["param"]!.GetValue<string>());
    }

    [Fact]
    public async Task Lists_filter_by_model_and_metadata_page_with_after_and_order()
    {
        var (_, key) = await fixture.CreateProjectAsync("member");
        var chat = fixture.ChatClient(key);
        var ids = new List<string>();
        for (var i = 0; i < 5; i++)
        {
            ChatCompletion completion = await chat.CompleteChatAsync([new UserChatMessage($"ticket {i}")], Stored(("parity", i % 2 == 0 ? "even" : "odd")));
            ids.Add(completion.Id);
        }

        foreach (var id in ids)
        {
            await WaitForStoredAsync(chat, id);
        }

        // The SDK pages by itself (after = the last id of each page).
        var ascending = await ListAllAsync(chat, new ChatCompletionCollectionOptions { PageSizeLimit = 2, Order = ChatCompletionCollectionOrder.Ascending });
        Assert.Equal(ids.Order(), ascending.Select(completion => completion.Id).Order());
        var descending = await ListAllAsync(chat, new ChatCompletionCollectionOptions { PageSizeLimit = 2, Order = ChatCompletionCollectionOrder.Descending });
        Assert.Equal(ascending.Select(completion => completion.Id).Reverse(), descending.Select(completion => completion.Id));
        Assert.True(ascending.Zip(ascending.Skip(1)).All(pair => pair.First.CreatedAt <= pair.Second.CreatedAt));

        var even = await ListAllAsync(chat, new ChatCompletionCollectionOptions { Metadata = { ["parity"] = "even" } });
        Assert.Equal(new[] { ids[0], ids[2], ids[4] }.Order(), even.Select(completion => completion.Id).Order());
        Assert.Equal(5, (await ListAllAsync(chat, new ChatCompletionCollectionOptions { Model = GatewayFixture.UpstreamModel })).Count);
        Assert.Empty(await ListAllAsync(chat, new ChatCompletionCollectionOptions { Model = "another-model" }));

        // The envelope by hand: first_id/last_id, has_more and the cursor.
        using var http = fixture.CreateClient(key);
        var first = JsonNode.Parse(await http.GetStringAsync("/v1/chat/completions?limit=3"))!;
        Assert.Equal("list", first["object"]!.GetValue<string>());
        Assert.Equal(3, first["data"]!.AsArray().Count);
        Assert.True(first["has_more"]!.GetValue<bool>());
        Assert.Equal(first["data"]![2]!["id"]!.GetValue<string>(), first["last_id"]!.GetValue<string>());
        var second = JsonNode.Parse(await http.GetStringAsync($"/v1/chat/completions?limit=3&after={first["last_id"]}"))!;
        Assert.Equal(2, second["data"]!.AsArray().Count);
        Assert.False(second["has_more"]!.GetValue<bool>());
        Assert.Equal(ascending.Select(completion => completion.Id),
            first["data"]!.AsArray().Concat(second["data"]!.AsArray()).Select(item => item!["id"]!.GetValue<string>()));
        var odd = JsonNode.Parse(await http.GetStringAsync("/v1/chat/completions?metadata[parity]=odd&order=desc"))!;
        Assert.Equal(new[] { ids[1], ids[3] }.Order(), odd["data"]!.AsArray().Select(item => item!["id"]!.GetValue<string>()).Order());
    }

    [Fact]
    public async Task Without_store_nothing_is_stored()
    {
        var (_, key) = await fixture.CreateProjectAsync("member");
        var chat = fixture.ChatClient(key);
        await chat.CompleteChatAsync([new UserChatMessage("not stored")]);
        await chat.CompleteChatAsync([new UserChatMessage("not stored either")], new ChatCompletionOptions { StoredOutputEnabled = false });
        using var http = fixture.CreateClient(key);
        var absent = await http.PostAsJsonAsync("/v1/chat/completions", new { model = GatewayFixture.UpstreamModel, messages = new[] { new { role = "user", content = "a b" } }, metadata = new { k = "v" } });
        Assert.Equal(HttpStatusCode.OK, absent.StatusCode);
        // The provider is not asked to store: the gateway is where a project's completions are kept.
        Assert.Null(fixture.Upstream.Received.Last()["metadata"]);

        // Written in order by one writer: once the stored one is readable, anything stored before it would be too.
        ChatCompletion stored = await chat.CompleteChatAsync([new UserChatMessage("stored")], Stored());
        Assert.Null(fixture.Upstream.Received.Last()["store"]);
        await WaitForStoredAsync(chat, stored.Id);
        Assert.Equal([stored.Id], (await ListAllAsync(chat)).Select(completion => completion.Id));
    }

    [Fact]
    public async Task A_streamed_completion_is_stored_whole_under_the_id_its_chunks_carried()
    {
        var (_, key) = await fixture.CreateProjectAsync("member");
        var chat = fixture.ChatClient(key);
        string? id = null;
        var text = "";
        await foreach (var update in chat.CompleteChatStreamingAsync([new UserChatMessage("one two three four five")], Stored(("mode", "stream"))))
        {
            id ??= update.CompletionId;
            Assert.Equal(id, update.CompletionId);
            text += string.Concat(update.ContentUpdate.Select(part => part.Text));
        }

        Assert.Equal("five four three two one", text);
        Assert.StartsWith("chatcmpl-", id, StringComparison.Ordinal);
        Assert.NotEqual("chatcmpl-echo", id);
        var stored = await WaitForStoredAsync(chat, id!);
        Assert.Equal(text, stored.Content[0].Text);
        Assert.Equal(ChatFinishReason.Stop, stored.FinishReason);
        Assert.Equal(5, stored.Usage.OutputTokenCount);
        Assert.Equal([id], (await ListAllAsync(chat, new ChatCompletionCollectionOptions { Metadata = { ["mode"] = "stream" } })).Select(completion => completion.Id));
    }

    [Fact]
    public async Task Completions_of_the_built_in_runtime_are_stored_streamed_or_not()
    {
        var (_, key) = await fixture.CreateProjectAsync("member");
        var chat = fixture.ChatClient(key, "local-nano");
        var options = Stored(("runtime", "local"));
        options.MaxOutputTokenCount = 8;
        options.Temperature = 0;
        ChatCompletion answered = await chat.CompleteChatAsync([new UserChatMessage("hello")], options);
        var streamedText = "";
        string? streamedId = null;
        await foreach (var update in chat.CompleteChatStreamingAsync([new UserChatMessage("hello again")], options))
        {
            streamedId ??= update.CompletionId;
            streamedText += string.Concat(update.ContentUpdate.Select(part => part.Text));
        }

        var stored = await WaitForStoredAsync(chat, answered.Id);
        Assert.Equal(answered.Content[0].Text, stored.Content[0].Text);
        Assert.Equal("local-nano", stored.Model);
        var streamed = await WaitForStoredAsync(chat, streamedId!);
        Assert.Equal(streamedText, streamed.Content.Count == 0 ? "" : streamed.Content[0].Text);
        Assert.True(streamed.Usage.InputTokenCount > 0);

        // The request's sampling parameters are kept with it, as OpenAI's stored completions show them.
        using var http = fixture.CreateClient(key);
        var raw = JsonNode.Parse(await http.GetStringAsync($"/v1/chat/completions/{answered.Id}"))!;
        Assert.Equal(0, raw["temperature"]!.GetValue<double>());
    }

    [Fact]
    public async Task A_completion_holding_the_nul_character_is_stored()
    {
        var (_, key) = await fixture.CreateProjectAsync("member");
        using var http = fixture.CreateClient(key);
        var response = await http.PostAsync("/v1/chat/completions", new StringContent(
            """{"model":"echo-1","store":true,"messages":[{"role":"user","content":"nul\u0000here please"}]}""", System.Text.Encoding.UTF8, "application/json"));
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, body);
        var stored = await WaitForStoredAsync(fixture.ChatClient(key), JsonNode.Parse(body)!["id"]!.GetValue<string>());
        Assert.Equal("please nul\0here", stored.Content[0].Text);
    }

    [Fact]
    public async Task A_completion_the_database_refuses_is_logged_and_counted_and_costs_no_other()
    {
        var (projectId, key) = await fixture.CreateProjectAsync("member");
        var dropped = new System.Collections.Concurrent.ConcurrentQueue<(string Project, string Reason)>();
        using var listener = new System.Diagnostics.Metrics.MeterListener();
        listener.InstrumentPublished = (instrument, meterListener) =>
        {
            if (instrument.Name == "finetuneplatform.stored_completions.dropped")
            {
                meterListener.EnableMeasurementEvents(instrument);
            }
        };
        listener.SetMeasurementEventCallback<long>((_, _, tags, _) =>
        {
            var tagged = tags.ToArray().ToDictionary(tag => tag.Key, tag => tag.Value?.ToString());
            dropped.Enqueue((tagged["project"]!, tagged["reason"]!));
        });
        listener.Start();

        // A row the database refuses (its project does not exist) is dropped, loudly; a good row queued with it is stored.
        var writer = fixture.Gateway.Services.GetRequiredService<StoredCompletions.StoredCompletionWriter>();
        StoredCompletions.StoredCompletion Row(string project) => new()
        {
            Id = "chatcmpl-" + Guid.NewGuid().ToString("N"),
            ProjectId = project,
            Model = GatewayFixture.UpstreamModel,
            Created = DateTimeOffset.UtcNow.ToUnixTimeSeconds(),
            RequestId = "req_test",
            InputMessages = """[{"role":"user","content":"hi"}]""",
            Completion = """{"id":"x","object":"chat.completion","created":1,"model":"echo-1","choices":[]}""",
            Metadata = "{}",
        };
        var orphan = Row("proj_does_not_exist");
        var good = Row(projectId);
        writer.Store(orphan);
        writer.Store(good);

        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (!dropped.Contains(("proj_does_not_exist", "write_failed")) && DateTime.UtcNow < deadline)
        {
            await Task.Delay(50);
        }

        Assert.Contains(("proj_does_not_exist", "write_failed"), dropped);
        Assert.DoesNotContain(dropped, entry => entry.Project == projectId);
        using var http = fixture.CreateClient(key);
        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync($"/v1/chat/completions/{good.Id}")).StatusCode);
    }

    [Fact]
    public async Task Another_projects_completions_are_404_and_readers_cannot_change_them()
    {
        var (ownerProject, ownerKey) = await fixture.CreateProjectAsync("member");
        var (_, strangerKey) = await fixture.CreateProjectAsync("owner");
        var chat = fixture.ChatClient(ownerKey);
        ChatCompletion completion = await chat.CompleteChatAsync([new UserChatMessage("private ticket")], Stored(("team", "a")));
        await WaitForStoredAsync(chat, completion.Id);

        using var stranger = fixture.CreateClient(strangerKey);
        foreach (var response in new[]
        {
            await stranger.GetAsync($"/v1/chat/completions/{completion.Id}"),
            await stranger.GetAsync($"/v1/chat/completions/{completion.Id}/messages"),
            await stranger.PostAsJsonAsync($"/v1/chat/completions/{completion.Id}", new { metadata = new { team = "b" } }),
            await stranger.DeleteAsync($"/v1/chat/completions/{completion.Id}"),
        })
        {
            Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
            var error = JsonNode.Parse(await response.Content.ReadAsStringAsync())!["error"]!;
            Assert.Equal("invalid_request_error", error["type"]!.GetValue<string>());
        }

        var strangerList = JsonNode.Parse(await stranger.GetStringAsync("/v1/chat/completions"))!;
        Assert.Empty(strangerList["data"]!.AsArray());
        var cursor = await stranger.GetAsync($"/v1/chat/completions?after={completion.Id}");
        Assert.Equal(HttpStatusCode.BadRequest, cursor.StatusCode);

        using var admin = fixture.CreateClient(GatewayFixture.AdminKey);
        var created = await admin.PostAsJsonAsync($"/admin/v1/projects/{ownerProject}/keys", new { name = "reader", role = "reader" });
        var readerKey = JsonNode.Parse(await created.Content.ReadAsStringAsync())!["value"]!.GetValue<string>();
        using var reader = fixture.CreateClient(readerKey);
        Assert.Single(JsonNode.Parse(await reader.GetStringAsync("/v1/chat/completions"))!["data"]!.AsArray());
        Assert.Equal(HttpStatusCode.OK, (await reader.GetAsync($"/v1/chat/completions/{completion.Id}/messages")).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await reader.PostAsJsonAsync($"/v1/chat/completions/{completion.Id}", new { metadata = new { team = "b" } })).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await reader.DeleteAsync($"/v1/chat/completions/{completion.Id}")).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await reader.PostAsJsonAsync("/v1/chat/completions/export", new { })).StatusCode);
        Assert.Equal("a", JsonNode.Parse(await reader.GetStringAsync($"/v1/chat/completions/{completion.Id}"))!["metadata"]!["team"]!.GetValue<string>());
    }

    public static TheoryData<string, string, string?, string> BadRequests => new()
    {
        { "GET", "/v1/chat/completions?limit=0", null, "limit" },
        { "GET", "/v1/chat/completions?limit=abc", null, "limit" },
        { "GET", "/v1/chat/completions?order=sideways", null, "order" },
        { "GET", "/v1/chat/completions?after=chatcmpl-nothing", null, "after" },
        { "GET", "/v1/chat/completions?metadata=x", null, "metadata" },
        { "GET", "/v1/chat/completions/{id}/messages?limit=-1", null, "limit" },
        { "GET", "/v1/chat/completions/{id}/messages?order=up", null, "order" },
        { "GET", "/v1/chat/completions/{id}/messages?after=msg-nothing", null, "after" },
        { "POST", "/v1/chat/completions/{id}", """{}""", "metadata" },
        { "POST", "/v1/chat/completions/{id}", """{"metadata":{"k":1}}""", "metadata" },
        { "POST", "/v1/chat/completions/{id}", """{"metadata":{"k":"v"},"model":"x"}""", "model" },
        { "POST", "/v1/chat/completions/{id}", """{"metadata":"x"}""", "metadata" },
        { "POST", "/v1/chat/completions", """{"model":"echo-1","messages":[{"role":"user","content":"a"}],"store":"yes"}""", "store" },
        { "POST", "/v1/chat/completions", """{"model":"echo-1","messages":[{"role":"user","content":"a"}],"store":true,"metadata":{"k":2}}""", "metadata" },
        { "POST", "/v1/chat/completions", """{"model":"echo-1","messages":[{"role":"user","content":"a"}],"store":true,"metadata":{"k1":"1","k2":"2","k3":"3","k4":"4","k5":"5","k6":"6","k7":"7","k8":"8","k9":"9","k10":"10","k11":"11","k12":"12","k13":"13","k14":"14","k15":"15","k16":"16","k17":"17"}}""", "metadata" },
        { "POST", "/v1/chat/completions/export", """{"limit":0}""", "limit" },
        { "POST", "/v1/chat/completions/export", """{"created_after":"yesterday"}""", "created_after" },
        { "POST", "/v1/chat/completions/export", """{"metadata":[]}""", "metadata" },
    };

    [Theory]
    [MemberData(nameof(BadRequests))]
    public async Task Bad_parameters_are_400_naming_the_parameter(string method, string path, string? body, string param)
    {
        var (_, key) = await fixture.CreateProjectAsync("member");
        var chat = fixture.ChatClient(key);
        ChatCompletion completion = await chat.CompleteChatAsync([new UserChatMessage("a ticket")], Stored());
        await WaitForStoredAsync(chat, completion.Id);
        using var http = fixture.CreateClient(key);
        using var request = new HttpRequestMessage(new HttpMethod(method), path.Replace("{id}", completion.Id, StringComparison.Ordinal));
        if (body is not null)
        {
            request.Content = new StringContent(body, System.Text.Encoding.UTF8, "application/json");
        }

        var response = await http.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.BadRequest, text);
        var error = JsonDocument.Parse(text).RootElement.GetProperty("error");
        Assert.Equal("invalid_request_error", error.GetProperty("type").GetString());
        Assert.Equal(param, error.GetProperty("param").GetString());
    }

    [Fact]
    public async Task Unknown_ids_are_404_naming_completion_id()
    {
        var (_, key) = await fixture.CreateProjectAsync("member");
        using var http = fixture.CreateClient(key);
        foreach (var response in new[]
        {
            await http.GetAsync("/v1/chat/completions/chatcmpl-nothing"),
            await http.GetAsync("/v1/chat/completions/chatcmpl-nothing/messages"),
            await http.PostAsJsonAsync("/v1/chat/completions/chatcmpl-nothing", new { metadata = new { k = "v" } }),
        })
        {
            Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
            Assert.Equal("completion_id", JsonNode.Parse(await response.Content.ReadAsStringAsync())!["error"]!["param"]!.GetValue<string>());
        }
    }
}
