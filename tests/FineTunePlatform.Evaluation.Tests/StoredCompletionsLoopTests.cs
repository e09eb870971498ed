// The SDK marks its stored-completions methods experimental; they are what our users call us with.
#pragma warning disable OPENAI001
using System.ClientModel;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.Json.Nodes;
using FineTunePlatform.Training.Tests;
using OpenAI.Chat;
using OpenAI.Files;

namespace FineTunePlatform.Evaluation.Tests;

/// <summary>
/// The loop issue 16 asks for, through the OpenAI SDK (raw HTTP only for our export route): production chats stored
/// with `store: true` → an eval run over them (`stored_completions`) → exported as a fine-tuning file → the file is
/// processed → a fine-tuning job on it succeeds.
/// </summary>
[Collection(EvalsCollection.Name)]
public sealed class StoredCompletionsLoopTests(EvalsFixture fixture)
{
    private TrainingPlatform Platform => fixture.Platform;

    private static async Task<List<ChatCompletion>> WaitForStoredAsync(ChatClient chat, ChatCompletionCollectionOptions options, int count)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (true)
        {
            var stored = new List<ChatCompletion>();
            await foreach (var completion in chat.GetChatCompletionsAsync(options))
            {
                stored.Add(completion);
            }

            if (stored.Count >= count || DateTime.UtcNow > deadline)
            {
                return stored;
            }

            await Task.Delay(50);
        }
    }

    [Fact]
    public async Task Stored_chats_are_evaluated_exported_as_a_fine_tuning_file_and_trained_on()
    {
        var (_, key) = await Platform.Admin.CreateProjectAsync("member");
        var (_, strangerKey) = await Platform.Admin.CreateProjectAsync("member");
        var chat = Platform.Chat(key, TrainingPlatform.UpstreamModel);
        var options = new ChatCompletionOptions { StoredOutputEnabled = true, Metadata = { ["use_case"] = "tickets" } };
        for (var i = 0; i < 10; i++)
        {
            // The echo provider answers the words reversed: "refund ticket 3" -> "3 ticket refund".
            await chat.CompleteChatAsync([new UserChatMessage($"refund ticket {i}")], options);
        }

        await chat.CompleteChatAsync([new UserChatMessage("other traffic")], new ChatCompletionOptions { StoredOutputEnabled = true, Metadata = { ["use_case"] = "other" } });
        // Another project's stored chats with the same metadata are never part of this project's eval or export.
        await Platform.Chat(strangerKey, TrainingPlatform.UpstreamModel).CompleteChatAsync([new UserChatMessage("stranger ticket")], options);
        var tickets = await WaitForStoredAsync(chat, new ChatCompletionCollectionOptions { Metadata = { ["use_case"] = "tickets" } }, 10);
        Assert.Equal(10, tickets.Count);
        Assert.Equal(11, (await WaitForStoredAsync(chat, new ChatCompletionCollectionOptions(), 11)).Count);

        // An eval over the project's logs: each item is a stored request, each sample its stored answer.
        var eval = await fixture.CreateEvalAsync(key, new
        {
            name = "stored tickets",
            data_source_config = new { type = "logs", metadata = new { use_case = "tickets" } },
            testing_criteria = new object[]
            {
                new { type = "string_check", name = "mentions refund", input = "{{sample.output_text}}", reference = "refund", operation = "ilike" },
                new { type = "string_check", name = "starts with 1", input = "{{sample.output_text}}", reference = "1 ticket refund", operation = "eq" },
            },
        });
        var evalId = eval["id"]!.GetValue<string>();
        Assert.Equal("logs", eval["data_source_config"]!["type"]!.GetValue<string>());
        Assert.Equal(new[] { "item", "sample" }, eval["data_source_config"]!["schema"]!["required"]!.AsArray().Select(name => name!.GetValue<string>()));

        var run = await fixture.CreateRunAsync(key, evalId, new
        {
            name = "graded as answered",
            data_source = new { type = "completions", source = new { type = "stored_completions", metadata = new { use_case = "tickets" }, limit = 100 } },
        });
        var finished = await fixture.WaitForRunAsync(key, evalId, run["id"]!.GetValue<string>());
        Assert.Equal("completed", finished["status"]!.GetValue<string>());
        var counts = finished["result_counts"]!;
        Assert.Equal((10, 0, 9, 1), (counts["total"]!.GetValue<int>(), counts["errored"]!.GetValue<int>(), counts["failed"]!.GetValue<int>(), counts["passed"]!.GetValue<int>()));
        Assert.Empty(finished["per_model_usage"]!.AsArray()); // nothing was sampled again
        var items = await fixture.OutputItemsAsync(key, evalId, finished["id"]!.GetValue<string>());
        Assert.Equal("refund ticket 0", items[0]["datasource_item"]!["input"]![0]!["content"]!.GetValue<string>());
        Assert.Equal(tickets.Single(completion => completion.Content[0].Text == "0 ticket refund").Content[0].Text,
            items[0]["sample"]!["output"]![0]!["content"]!.GetValue<string>());
        // The sample is the stored one as it was answered: its input and its usage, not an empty draw's.
        Assert.Equal("refund ticket 0", items[0]["sample"]!["input"]![0]!["content"]!.GetValue<string>());
        Assert.True(items[0]["sample"]!["usage"]!["completion_tokens"]!.GetValue<long>() > 0, items[0]["sample"]!.ToJsonString());

        // The same items sampled again by a model (input_messages defaults to item.input), filtered and limited.
        var created = tickets.Select(completion => completion.CreatedAt.ToUnixTimeSeconds()).ToList();
        var resampled = await fixture.CreateRunAsync(key, evalId, new
        {
            name = "sampled again",
            data_source = new
            {
                type = "completions",
                model = TrainingPlatform.UpstreamModel,
                source = new { type = "stored_completions", model = TrainingPlatform.UpstreamModel, created_after = created.Min() - 1, created_before = created.Max() + 1, limit = 3 },
            },
        });
        var resampledRun = await fixture.WaitForRunAsync(key, evalId, resampled["id"]!.GetValue<string>());
        Assert.Equal("completed", resampledRun["status"]!.GetValue<string>());
        Assert.Equal(3, resampledRun["result_counts"]!["total"]!.GetValue<int>());
        Assert.Equal(3, resampledRun["per_model_usage"]![0]!["invocation_count"]!.GetValue<int>());

        // Our addition: the same selection as a chat fine-tuning file in the project's files.
        using var http = Platform.Http(key);
        var exported = await http.PostAsJsonAsync("/v1/chat/completions/export", new { metadata = new { use_case = "tickets" }, filename = "tickets-from-traffic.jsonl" });
        var exportedText = await exported.Content.ReadAsStringAsync();
        Assert.True(exported.StatusCode == HttpStatusCode.OK, exportedText);
        var fileId = JsonNode.Parse(exportedText)!["id"]!.GetValue<string>();
        OpenAIFile file = await Platform.Files(key).GetFileAsync(fileId);
        Assert.Equal("tickets-from-traffic.jsonl", file.Filename);
        Assert.Equal(FilePurpose.FineTune, file.Purpose);
#pragma warning disable CS0618 // Status is marked obsolete in the SDK but is still what OpenAI returns.
        Assert.Equal(FileStatus.Processed, file.Status);
#pragma warning restore CS0618
        var lines = (await Platform.Files(key).DownloadFileAsync(fileId)).Value.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(10, lines.Length);
        var example = JsonNode.Parse(lines[0])!["messages"]!.AsArray();
        Assert.Equal(("user", "assistant"), (example[0]!["role"]!.GetValue<string>(), example[1]!["role"]!.GetValue<string>()));
        Assert.Equal(string.Join(' ', example[0]!["content"]!.GetValue<string>().Split(' ').Reverse()), example[1]!["content"]!.GetValue<string>());

        // Nothing matches: a 400, and no file.
        var empty = await http.PostAsJsonAsync("/v1/chat/completions/export", new { metadata = new { use_case = "nobody" } });
        Assert.Equal(HttpStatusCode.BadRequest, empty.StatusCode);

        var job = await Platform.CreateJobAsync(key, fileId, epochs: 1);
        var done = await Platform.WaitForJobAsync(key, job.GetProperty("id").GetString()!, TrainingPlatform.Finished);
        Assert.True(done.GetProperty("status").GetString() == "succeeded", done.ToString());
        Assert.StartsWith("ft:local-nano:", done.GetProperty("fine_tuned_model").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Stored_completion_sources_are_checked_when_the_run_is_created()
    {
        var (_, key) = await Platform.Admin.CreateProjectAsync("member");
        var eval = await fixture.CreateEvalAsync(key, new
        {
            name = "stored",
            data_source_config = new { type = "stored_completions" },
            testing_criteria = new object[] { new { type = "string_check", name = "any", input = "{{sample.output_text}}", reference = "x", operation = "ilike" } },
        });
        var evalId = eval["id"]!.GetValue<string>();
        foreach (var (source, param) in new (object Source, string Param)[]
        {
            (new { type = "stored_completions", limit = 0 }, "data_source.source.limit"),
            (new { type = "stored_completions", created_after = "yesterday" }, "data_source.source.created_after"),
            (new { type = "stored_completions", metadata = new { k = 1 } }, "data_source.source.metadata"),
        })
        {
            var refused = await Assert.ThrowsAsync<ClientResultException>(() => fixture.CreateRunAsync(key, evalId, new { data_source = new { type = "completions", source } }));
            Assert.Equal(400, refused.Status);
            var error = JsonDocument.Parse(refused.GetRawResponse()!.Content.ToString()).RootElement.GetProperty("error");
            Assert.Equal(param, error.GetProperty("param").GetString());
        }

        var jsonl = await Assert.ThrowsAsync<ClientResultException>(() => fixture.CreateRunAsync(key, evalId,
            new { data_source = new { type = "jsonl", source = new { type = "stored_completions" } } }));
        Assert.Equal(400, jsonl.Status);

        // No stored completions yet: the run completes with nothing to grade.
        var run = await fixture.CreateRunAsync(key, evalId, new { data_source = new { type = "completions", source = new { type = "stored_completions" } } });
        var finished = await fixture.WaitForRunAsync(key, evalId, run["id"]!.GetValue<string>());
        Assert.Equal("completed", finished["status"]!.GetValue<string>());
        Assert.Equal(0, finished["result_counts"]!["total"]!.GetValue<int>());
    }
}
