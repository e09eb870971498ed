using System.ClientModel;
using System.ClientModel.Primitives;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using FineTunePlatform.Testing;
using FineTunePlatform.Training.Tests;
using OpenAI.Chat;
using OpenAI.Files;

namespace FineTunePlatform.Evaluation.Tests;

[Collection(EvalsCollection.Name)]
public sealed class EvalsApiTests(EvalsFixture fixture)
{
    private TrainingPlatform Platform => fixture.Platform;

    [Fact]
    public async Task A_run_over_inline_samples_grades_every_item_with_every_criterion()
    {
        var (_, key) = await Platform.Admin.CreateProjectAsync("member");
        var eval = await fixture.CreateEvalAsync(key, new
        {
            name = "tickets",
            metadata = new { team = "support" },
            data_source_config = new
            {
                type = "custom",
                item_schema = new { type = "object", properties = new { expected = new { type = "string" } }, required = new[] { "expected" } },
                include_sample_schema = true,
            },
            testing_criteria = new object[]
            {
                new { type = "string_check", name = "exact", input = "{{sample.output_text}}", reference = "{{item.expected}}", operation = "eq" },
                new { type = "string_check", name = "mentions", input = "{{sample.output_text}}", reference = "{{item.expected}}", operation = "ilike" },
                new { type = "text_similarity", name = "close", input = "{{sample.output_text}}", reference = "{{item.expected}}", evaluation_metric = "fuzzy_match", pass_threshold = 0.8 },
            },
        });
        var evalId = eval["id"]!.GetValue<string>();
        Assert.StartsWith("eval_", evalId, StringComparison.Ordinal);
        Assert.Equal("eval", eval["object"]!.GetValue<string>());
        Assert.Equal("support", eval["metadata"]!["team"]!.GetValue<string>());
        Assert.Equal("custom", eval["data_source_config"]!["type"]!.GetValue<string>());
        Assert.Equal("string", eval["data_source_config"]!["schema"]!["properties"]!["item"]!["properties"]!["expected"]!["type"]!.GetValue<string>());
        Assert.Equal(3, eval["testing_criteria"]!.AsArray().Count);

        var samples = new (string Expected, string Output)[]
        {
            ("billing", "billing"),         // exact, mentions, close
            ("billing", "Billing please"),  // mentions only
            ("support", "suport"),          // close only (fuzzy 0.92)
            ("support", "refund"),          // nothing
        };
        var run = await fixture.CreateRunAsync(key, evalId, new
        {
            name = "inline",
            data_source = new
            {
                type = "jsonl",
                source = new
                {
                    type = "file_content",
                    content = samples.Select(sample => new { item = new { expected = sample.Expected }, sample = new { output_text = sample.Output } }).ToArray(),
                },
            },
        });
        var runId = run["id"]!.GetValue<string>();
        Assert.StartsWith("evalrun_", runId, StringComparison.Ordinal);
        Assert.Equal("eval.run", run["object"]!.GetValue<string>());
        Assert.Contains(run["status"]!.GetValue<string>(), new[] { "queued", "in_progress", "completed" });

        var finished = await fixture.WaitForRunAsync(key, evalId, runId);
        Assert.Equal("completed", finished["status"]!.GetValue<string>());
        var counts = finished["result_counts"]!;
        Assert.Equal((4, 0, 3, 1), (counts["total"]!.GetValue<int>(), counts["errored"]!.GetValue<int>(), counts["failed"]!.GetValue<int>(), counts["passed"]!.GetValue<int>()));
        var perCriterion = finished["per_testing_criteria_results"]!.AsArray().ToDictionary(result => result!["testing_criteria"]!.GetValue<string>(), result => (result!["passed"]!.GetValue<int>(), result["failed"]!.GetValue<int>()));
        Assert.Equal((1, 3), perCriterion["exact"]);
        Assert.Equal((2, 2), perCriterion["mentions"]);
        Assert.Equal((2, 2), perCriterion["close"]);
        Assert.Empty(finished["per_model_usage"]!.AsArray());

        var items = await fixture.OutputItemsAsync(key, evalId, runId);
        Assert.Equal([0, 1, 2, 3], items.Select(item => item["datasource_item_id"]!.GetValue<int>()));
        Assert.Equal(["pass", "fail", "fail", "fail"], items.Select(item => item["status"]!.GetValue<string>()));
        Assert.Equal("suport", items[2]["sample"]!["output_text"]!.GetValue<string>());
        var close = items[2]["results"]!.AsArray().Single(result => result!["name"]!.GetValue<string>() == "close")!;
        Assert.True(close["passed"]!.GetValue<bool>());
        Assert.Equal(2.0 * 6 / 13, close["score"]!.GetValue<double>(), 6);

        var failed = await fixture.OutputItemsAsync(key, evalId, runId, status: "fail");
        Assert.Equal(3, failed.Count);
        var one = TrainingPlatform.JsonOf(await fixture.Evals(key).GetEvaluationRunOutputItemAsync(evalId, runId, items[0]["id"]!.GetValue<string>(), new RequestOptions()));
        Assert.Equal("eval.run.output_item", one["object"]!.GetValue<string>());
        Assert.Equal("billing", one["datasource_item"]!["expected"]!.GetValue<string>());
    }

    [Fact]
    public async Task A_completions_run_samples_each_model_through_the_gateway_as_chat_completions_would()
    {
        var (_, key) = await Platform.Admin.CreateProjectAsync("member");
        var evalId = (await fixture.CreateEvalAsync(key, EvalsFixture.ExactMatchEval()))["id"]!.GetValue<string>();
        var questions = new (string Question, string Expected)[]
        {
            ("route my ticket", "ticket my route"),
            ("refund now please", "please now refund"),
            ("hello", "hello"),
            ("wrong answer here", "wrong answer here"),
        };
        var content = questions.Select(entry => new { item = new { question = entry.Question, expected = entry.Expected } }).ToArray();

        // The upstream provider answers the user's words reversed.
        var upstream = await fixture.CreateRunAsync(key, evalId, new
        {
            name = "upstream",
            data_source = new
            {
                type = "completions",
                model = TrainingPlatform.UpstreamModel,
                input_messages = new { type = "template", template = new[] { new { role = "system", content = "Answer briefly." }, new { role = "user", content = "{{item.question}}" } } },
                sampling_params = new { temperature = 0, max_completion_tokens = 16 },
                source = new { type = "file_content", content },
            },
        });
        var finished = await fixture.WaitForRunAsync(key, evalId, upstream["id"]!.GetValue<string>());
        Assert.Equal("completed", finished["status"]!.GetValue<string>());
        Assert.Equal(TrainingPlatform.UpstreamModel, finished["model"]!.GetValue<string>());
        var upstreamCounts = finished["result_counts"]!;
        Assert.True((upstreamCounts["passed"]!.GetValue<int>(), upstreamCounts["failed"]!.GetValue<int>()) == (3, 1),
            await fixture.ItemStatusesAsync(key, evalId, upstream["id"]!.GetValue<string>()));
        var usage = Assert.Single(finished["per_model_usage"]!.AsArray())!;
        Assert.Equal(TrainingPlatform.UpstreamModel, usage["model_name"]!.GetValue<string>());
        Assert.Equal(4, usage["invocation_count"]!.GetValue<int>());
        var items = await fixture.OutputItemsAsync(key, evalId, finished["id"]!.GetValue<string>());
        var sample = items[0]["sample"]!;
        Assert.Equal("ticket my route", sample["output"]![0]!["content"]!.GetValue<string>());
        Assert.Equal("route my ticket", sample["input"]![1]!["content"]!.GetValue<string>());
        Assert.Equal(16, sample["max_completion_tokens"]!.GetValue<int>());
        Assert.True(sample["usage"]!["completion_tokens"]!.GetValue<int>() > 0);

        // The built-in runtime: greedy samples are exactly what the chat completions API answers.
        var local = await fixture.CreateRunAsync(key, evalId, new
        {
            data_source = new
            {
                type = "completions",
                model = "local-nano",
                input_messages = new { type = "template", template = new[] { new { role = "user", content = "{{item.question}}" } } },
                sampling_params = new { temperature = 0, max_completion_tokens = 12, seed = 3 },
                source = new { type = "file_content", content },
            },
        });
        var localRun = await fixture.WaitForRunAsync(key, evalId, local["id"]!.GetValue<string>());
        Assert.Equal("completed", localRun["status"]!.GetValue<string>());
        Assert.Equal("local-nano", localRun["name"]!.GetValue<string>());
        var localItems = await fixture.OutputItemsAsync(key, evalId, localRun["id"]!.GetValue<string>());
        var chat = Platform.Chat(key, "local-nano");
        for (var i = 0; i < questions.Length; i++)
        {
            ChatCompletion direct = await chat.CompleteChatAsync([new UserChatMessage(questions[i].Question)],
                new ChatCompletionOptions { Temperature = 0, MaxOutputTokenCount = 12, Seed = 3 });
            Assert.Equal(direct.Content[0].Text, localItems[i]["sample"]!["output"]![0]!["content"]!.GetValue<string>());
        }
    }

    [Fact]
    public async Task An_item_reference_prompts_with_the_messages_each_item_carries()
    {
        var (_, key) = await Platform.Admin.CreateProjectAsync("member");
        var evalId = (await fixture.CreateEvalAsync(key, new
        {
            data_source_config = new { type = "custom", item_schema = new { type = "object", properties = new { expected = new { type = "string" } }, required = new[] { "messages" } } },
            testing_criteria = new[] { new { type = "string_check", name = "exact", input = "{{sample.output_text}}", reference = "{{item.expected}}", operation = "eq" } },
        }))["id"]!.GetValue<string>();
        var run = await fixture.CreateRunAsync(key, evalId, new
        {
            data_source = new
            {
                type = "completions",
                model = TrainingPlatform.UpstreamModel,
                input_messages = new { type = "item_reference", item_reference = "item.messages" },
                source = new
                {
                    type = "file_content",
                    content = new object[]
                    {
                        new { item = new { messages = new[] { new { role = "system", content = "be brief" }, new { role = "user", content = "one two" } }, expected = "two one" } },
                        new { item = new { messages = new[] { new { role = "user", content = "three four" } }, expected = "three four" } },
                        new { item = new { messages = "not a list", expected = "x" } },
                    },
                },
            },
        });
        var finished = await fixture.WaitForRunAsync(key, evalId, run["id"]!.GetValue<string>());
        Assert.Equal("completed", finished["status"]!.GetValue<string>());
        var counts = finished["result_counts"]!;
        Assert.True((counts["passed"]!.GetValue<int>(), counts["failed"]!.GetValue<int>(), counts["errored"]!.GetValue<int>()) == (1, 1, 1),
            await fixture.ItemStatusesAsync(key, evalId, run["id"]!.GetValue<string>()));
        var items = await fixture.OutputItemsAsync(key, evalId, finished["id"]!.GetValue<string>());
        Assert.Equal(2, items[0]["sample"]!["input"]!.AsArray().Count);
        Assert.Equal("error", items[2]["status"]!.GetValue<string>());
        Assert.Contains("item.messages", items[2]["sample"]!["error"]!["message"]!.GetValue<string>(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_run_larger_than_its_projects_rate_limit_paces_itself_instead_of_erroring_items()
    {
        var (projectId, key) = await Platform.Admin.CreateProjectAsync("member");
        await Platform.Admin.SetProjectLimitsAsync(projectId, requestsPerMinute: 120, tokensPerMinute: null);
        var evalId = (await fixture.CreateEvalAsync(key, EvalsFixture.ExactMatchEval()))["id"]!.GetValue<string>();
        var content = Enumerable.Range(0, 130).Select(i => new { item = new { question = $"word{i}", expected = $"word{i}" } }).ToArray();
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var run = await fixture.CreateRunAsync(key, evalId, new
        {
            data_source = new
            {
                type = "completions",
                model = TrainingPlatform.UpstreamModel,
                input_messages = new { type = "template", template = new[] { new { role = "user", content = "{{item.question}}" } } },
                source = new { type = "file_content", content },
            },
        });
        var finished = await fixture.WaitForRunAsync(key, evalId, run["id"]!.GetValue<string>());

        // 120 at once, then 2 a second: the last 10 had to wait for the bucket.
        Assert.True(clock.Elapsed > TimeSpan.FromSeconds(3), $"The run did not meet the limit ({clock.Elapsed}).");
        Assert.Equal("completed", finished["status"]!.GetValue<string>());
        Assert.Equal((130, 0), (finished["result_counts"]!["passed"]!.GetValue<int>(), finished["result_counts"]!["errored"]!.GetValue<int>()));
        Assert.Equal(130, finished["per_model_usage"]![0]!["invocation_count"]!.GetValue<int>());
    }

    [Fact]
    public async Task Model_graders_ask_the_judge_model_and_read_its_label_or_score()
    {
        var (_, key) = await Platform.Admin.CreateProjectAsync("member");
        var eval = await fixture.CreateEvalAsync(key, new
        {
            data_source_config = new { type = "custom", item_schema = new { type = "object", properties = new { label = new { type = "string" }, score = new { type = "string" } } } },
            testing_criteria = new object[]
            {
                new
                {
                    type = "label_model", name = "sentiment", model = TrainingPlatform.UpstreamModel,
                    input = new[] { new { role = "user", content = "{{item.label}}" } },
                    labels = new[] { "positive", "negative" }, passing_labels = new[] { "positive" },
                },
                new
                {
                    type = "score_model", name = "quality", model = TrainingPlatform.UpstreamModel,
                    input = new[] { new { role = "user", content = "{{item.score}}" } },
                    range = new[] { 0, 10 }, pass_threshold = 7,
                },
            },
        });
        var evalId = eval["id"]!.GetValue<string>();
        var run = await fixture.CreateRunAsync(key, evalId, new
        {
            data_source = new
            {
                type = "jsonl",
                source = new
                {
                    type = "file_content",
                    content = new object[]
                    {
                        new { item = new { label = "positive", score = "9" } },
                        new { item = new { label = "negative", score = "8" } },
                        new { item = new { label = "positive", score = "3" } },
                        new { item = new { label = "unsure", score = "none" } },
                    },
                },
            },
        });
        var finished = await fixture.WaitForRunAsync(key, evalId, run["id"]!.GetValue<string>());
        Assert.Equal("completed", finished["status"]!.GetValue<string>());
        var perCriterion = finished["per_testing_criteria_results"]!.AsArray().ToDictionary(result => result!["testing_criteria"]!.GetValue<string>(), result => result!["passed"]!.GetValue<int>());
        Assert.Equal(2, perCriterion["sentiment"]);
        Assert.Equal(2, perCriterion["quality"]);
        Assert.Equal(1, finished["result_counts"]!["passed"]!.GetValue<int>());
        Assert.Equal(8, finished["per_model_usage"]![0]!["invocation_count"]!.GetValue<int>());

        var items = await fixture.OutputItemsAsync(key, evalId, finished["id"]!.GetValue<string>());
        var quality = items.Select(item => item["results"]!.AsArray().Single(result => result!["name"]!.GetValue<string>() == "quality")!["score"]!.GetValue<double>());
        Assert.Equal([9.0, 8, 3, 0], quality);
        var sentiment = items[1]["results"]!.AsArray().Single(result => result!["name"]!.GetValue<string>() == "sentiment")!;
        Assert.Equal("negative", sentiment["sample"]!["verdict"]!.GetValue<string>());
    }

    [Fact]
    public async Task Items_and_samples_with_nul_characters_are_stored_and_graded()
    {
        var (_, key) = await Platform.Admin.CreateProjectAsync("member");
        var evalId = (await fixture.CreateEvalAsync(key, EvalsFixture.ExactMatchEval()))["id"]!.GetValue<string>();
        var run = await fixture.CreateRunAsync(key, evalId, new
        {
            data_source = new
            {
                type = "jsonl",
                source = new { type = "file_content", content = new[] { new { item = new { question = "a\u0000b", expected = "\u0000" }, sample = new { output_text = "\u0000" } } } },
            },
        });
        var finished = await fixture.WaitForRunAsync(key, evalId, run["id"]!.GetValue<string>());
        Assert.Equal("completed", finished["status"]!.GetValue<string>());
        Assert.Equal(1, finished["result_counts"]!["passed"]!.GetValue<int>());
        var item = Assert.Single(await fixture.OutputItemsAsync(key, evalId, finished["id"]!.GetValue<string>()));
        Assert.Equal("a\u0000b", item["datasource_item"]!["question"]!.GetValue<string>());
    }

    [Theory]
    [InlineData("""{"data_source_config":{"type":"custom","item_schema":{"type":"object"}},"testing_criteria":[{"type":"python","name":"p","source":"def grade(s, i): return 1"}]}""", "testing_criteria[0].type")]
    [InlineData("""{"data_source_config":{"type":"custom","item_schema":{"type":"object"}},"testing_criteria":[{"type":"string_check","name":"s","input":"{{sample.output_text}}","reference":"x"}]}""", "testing_criteria[0].operation")]
    [InlineData("""{"data_source_config":{"type":"custom","item_schema":{"type":"object"}},"testing_criteria":[{"type":"string_check","name":"s","input":"{{output}}","reference":"x","operation":"eq"}]}""", "testing_criteria[0].input")]
    [InlineData("""{"data_source_config":{"type":"custom","item_schema":{"type":"object"}},"testing_criteria":[{"type":"text_similarity","name":"t","input":"a","reference":"b","evaluation_metric":"cosine","pass_threshold":0.5}]}""", "testing_criteria[0].evaluation_metric")]
    [InlineData("""{"data_source_config":{"type":"custom","item_schema":{"type":"object"}},"testing_criteria":[{"type":"label_model","name":"l","model":"echo-1","input":[{"role":"user","content":"x"}],"labels":["a"],"passing_labels":["b"]}]}""", "testing_criteria[0].passing_labels")]
    [InlineData("""{"data_source_config":{"type":"retrieval"},"testing_criteria":[{"type":"string_check","name":"s","input":"a","reference":"a","operation":"eq"}]}""", "data_source_config.type")]
    [InlineData("""{"data_source_config":{"type":"logs","metadata":"tickets"},"testing_criteria":[{"type":"string_check","name":"s","input":"a","reference":"a","operation":"eq"}]}""", "data_source_config.metadata")]
    [InlineData("""{"data_source_config":{"type":"custom","item_schema":{"type":"thing"}},"testing_criteria":[{"type":"string_check","name":"s","input":"a","reference":"a","operation":"eq"}]}""", "data_source_config.item_schema")]
    [InlineData("""{"data_source_config":{"type":"custom","item_schema":{"type":"object"}},"testing_criteria":[]}""", "testing_criteria")]
    [InlineData("""{"data_source_config":{"type":"custom","item_schema":{"type":"object"}}}""", "testing_criteria")]
    [InlineData("""{"data_source_config":{"type":"custom","item_schema":{"type":"object"}},"testing_criteria":[{"type":"string_check","name":"s","input":"a","reference":"a","operation":"eq"}],"metadata":{"n":1}}""", "metadata")]
    [InlineData("""{"data_source_config":{"type":"custom","item_schema":{"type":"object"}},"testing_criteria":[{"type":"string_check","name":"s","input":"a","reference":"a","operation":"eq"}],"metadata":{"n":"a\u0000b"}}""", "metadata")]
    [InlineData("""{"name":"a\u0000b","data_source_config":{"type":"custom","item_schema":{"type":"object"}},"testing_criteria":[{"type":"string_check","name":"s","input":"a","reference":"a","operation":"eq"}]}""", "name")]
    public async Task Invalid_evals_are_400s_naming_the_param_and_create_nothing(string body, string param)
    {
        var (_, key) = await Platform.Admin.CreateProjectAsync("member");
        using var http = Platform.Http(key);
        var response = await http.PostAsync("/v1/evals", new StringContent(body, System.Text.Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var error = EvalsFixture.Json(await response.Content.ReadAsStringAsync()).GetProperty("error");
        Assert.Equal("invalid_request_error", error.GetProperty("type").GetString());
        Assert.Equal(param, error.GetProperty("param").GetString());
        Assert.Empty(EvalsFixture.Json(await http.GetStringAsync("/v1/evals")).GetProperty("data").EnumerateArray());
    }

    [Theory]
    [InlineData("""{"data_source":{"type":"responses","model":"x","source":{"type":"file_content","content":[{"item":{}}]}}}""", "data_source.type")]
    [InlineData("""{"data_source":{"type":"completions","input_messages":{"type":"template","template":[{"role":"user","content":"q"}]},"source":{"type":"file_content","content":[{"item":{"question":"a","expected":"b"}}]}}}""", "data_source.model")]
    [InlineData("""{"data_source":{"type":"jsonl","source":{"type":"file_content","content":[{"item":{"question":"a","expected":"b"}},{"item":{"question":1,"expected":"b"}}]}}}""", "data_source.source.content[1].item")]
    [InlineData("""{"data_source":{"type":"jsonl","source":{"type":"file_content","content":[{"item":{"question":"a"}}]}}}""", "data_source.source.content[0].item")]
    [InlineData("""{"data_source":{"type":"jsonl","source":{"type":"file_content","content":[{"item":{"question":"a","expected":"b"},"sample":"b"}]}}}""", "data_source.source.content[0].sample")]
    [InlineData("""{"data_source":{"type":"completions","model":"local-nano","input_messages":{"type":"template","template":[{"role":"user","content":"q"}]},"sampling_params":{"temperature":5},"source":{"type":"file_content","content":[{"item":{"question":"a","expected":"b"}}]}}}""", "data_source.sampling_params.temperature")]
    [InlineData("""{"data_source":{"type":"jsonl","source":{"type":"stored_completions"}}}""", "data_source.source.type")]
    [InlineData("""{"name":"no source"}""", "data_source")]
    public async Task Invalid_runs_are_400s_naming_the_param_and_create_nothing(string body, string param)
    {
        var (_, key) = await Platform.Admin.CreateProjectAsync("member");
        var evalId = (await fixture.CreateEvalAsync(key, EvalsFixture.ExactMatchEval()))["id"]!.GetValue<string>();
        using var http = Platform.Http(key);
        var response = await http.PostAsync($"/v1/evals/{evalId}/runs", new StringContent(body, System.Text.Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal(param, EvalsFixture.Json(await response.Content.ReadAsStringAsync()).GetProperty("error").GetProperty("param").GetString());
        Assert.Empty(EvalsFixture.Json(await http.GetStringAsync($"/v1/evals/{evalId}/runs")).GetProperty("data").EnumerateArray());
    }

    [Fact]
    public async Task A_run_reads_an_uploaded_evals_file_and_a_malformed_line_fails_it_naming_the_line()
    {
        var (_, key) = await Platform.Admin.CreateProjectAsync("member");
        var evalId = (await fixture.CreateEvalAsync(key, EvalsFixture.ExactMatchEval()))["id"]!.GetValue<string>();
        var files = Platform.Files(key);
        var lines = string.Join('\n', Enumerable.Range(0, 25).Select(i =>
            new JsonObject { ["item"] = new JsonObject { ["question"] = $"q{i}", ["expected"] = "yes" }, ["sample"] = new JsonObject { ["output_text"] = i % 5 == 0 ? "no" : "yes" } }.ToJsonString()));
        OpenAIFile good = await files.UploadFileAsync(BinaryData.FromString(lines + "\n"), "items.jsonl", FileUploadPurpose.Evaluations);
        var run = await fixture.CreateRunAsync(key, evalId, new { data_source = new { type = "jsonl", source = new { type = "file_id", id = good.Id } } });
        var finished = await fixture.WaitForRunAsync(key, evalId, run["id"]!.GetValue<string>());
        Assert.Equal("completed", finished["status"]!.GetValue<string>());
        Assert.Equal((25, 20, 5), (finished["result_counts"]!["total"]!.GetValue<int>(), finished["result_counts"]!["passed"]!.GetValue<int>(), finished["result_counts"]!["failed"]!.GetValue<int>()));
        Assert.Equal(25, (await fixture.OutputItemsAsync(key, evalId, finished["id"]!.GetValue<string>())).Count);

        OpenAIFile bad = await files.UploadFileAsync(BinaryData.FromString(lines.Split('\n')[0] + "\n{\"item\": {\"question\": \n"), "bad.jsonl", FileUploadPurpose.Evaluations);
        var failing = await fixture.CreateRunAsync(key, evalId, new { data_source = new { type = "jsonl", source = new { type = "file_id", id = bad.Id } } });
        var failed = await fixture.WaitForRunAsync(key, evalId, failing["id"]!.GetValue<string>());
        Assert.Equal("failed", failed["status"]!.GetValue<string>());
        Assert.Equal("invalid_data_source", failed["error"]!["code"]!.GetValue<string>());
        Assert.Contains("Line 2", failed["error"]!["message"]!.GetValue<string>(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Cancelling_a_run_stops_it_and_a_finished_run_cannot_be_cancelled()
    {
        var (_, key) = await Platform.Admin.CreateProjectAsync("member");
        var evalId = (await fixture.CreateEvalAsync(key, EvalsFixture.ExactMatchEval()))["id"]!.GetValue<string>();
        var content = Enumerable.Range(0, 2000).Select(i => new { item = new { question = $"tell me a long story number {i}", expected = "x" } }).ToArray();
        var run = await fixture.CreateRunAsync(key, evalId, new
        {
            data_source = new
            {
                type = "completions",
                model = "local-nano",
                input_messages = new { type = "template", template = new[] { new { role = "user", content = "{{item.question}}" } } },
                sampling_params = new { max_completion_tokens = 256 },
                source = new { type = "file_content", content },
            },
        });
        var runId = run["id"]!.GetValue<string>();
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while ((await fixture.GetRunAsync(key, evalId, runId))["result_counts"]!["total"]!.GetValue<int>() == 0)
        {
            Assert.True(DateTime.UtcNow < deadline, "The run graded nothing in 30 s.");
            await Task.Delay(50);
        }

        var cancelled = TrainingPlatform.JsonOf(await fixture.Evals(key).CancelEvaluationRunAsync(evalId, runId, new RequestOptions()));
        Assert.Equal("canceled", cancelled["status"]!.GetValue<string>());
        await Task.Delay(TimeSpan.FromSeconds(1));
        var graded = (await fixture.OutputItemsAsync(key, evalId, runId)).Count;
        await Task.Delay(TimeSpan.FromSeconds(1));
        Assert.Equal(graded, (await fixture.OutputItemsAsync(key, evalId, runId)).Count);
        Assert.True(graded < content.Length, "The run finished before it could be cancelled.");
        var after = await fixture.GetRunAsync(key, evalId, runId);
        Assert.Equal("canceled", after["status"]!.GetValue<string>());

        var again = await Assert.ThrowsAsync<ClientResultException>(() => fixture.Evals(key).CancelEvaluationRunAsync(evalId, runId, new RequestOptions()));
        Assert.Equal(400, again.Status);
    }

    [Fact]
    public async Task A_run_whose_evaluation_service_restarts_continues_and_grades_each_item_once()
    {
        var (_, key) = await Platform.Admin.CreateProjectAsync("member");
        var evalId = (await fixture.CreateEvalAsync(key, EvalsFixture.ExactMatchEval()))["id"]!.GetValue<string>();
        var content = Enumerable.Range(0, 400).Select(i => new { item = new { question = $"question {i}", expected = "x" } }).ToArray();
        var run = await fixture.CreateRunAsync(key, evalId, new
        {
            data_source = new
            {
                type = "completions",
                model = "local-nano",
                input_messages = new { type = "template", template = new[] { new { role = "user", content = "{{item.question}}" } } },
                sampling_params = new { max_completion_tokens = 64, seed = 1 },
                source = new { type = "file_content", content },
            },
        });
        var runId = run["id"]!.GetValue<string>();
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while ((await fixture.GetRunAsync(key, evalId, runId))["result_counts"]!["total"]!.GetValue<int>() == 0)
        {
            Assert.True(DateTime.UtcNow < deadline, "The run graded nothing in 30 s.");
            await Task.Delay(20);
        }

        await Platform.RestartEvaluationAsync();
        var graded = (await fixture.GetRunAsync(key, evalId, runId))["result_counts"]!["total"]!.GetValue<int>();
        Assert.True(graded < content.Length, "The run finished before the restart.");

        // 400 items of 64 sampled tokens: over a minute when the suite's other assemblies load both cores.
        var finished = await fixture.WaitForRunAsync(key, evalId, runId, TimeSpan.FromMinutes(4));
        Assert.Equal("completed", finished["status"]!.GetValue<string>());
        Assert.Equal(content.Length, finished["result_counts"]!["total"]!.GetValue<int>());
        var items = await fixture.OutputItemsAsync(key, evalId, runId);
        Assert.Equal(Enumerable.Range(0, content.Length), items.Select(item => item["datasource_item_id"]!.GetValue<int>()));
        // Every answered call counted once across both instances (an item whose call failed is errored, not counted).
        Assert.Equal(content.Length - finished["result_counts"]!["errored"]!.GetValue<int>(), finished["per_model_usage"]![0]!["invocation_count"]!.GetValue<int>());
    }

    [Fact]
    public async Task A_run_whose_executor_died_is_taken_over_after_its_lease_and_failed_after_too_many_attempts()
    {
        var (projectId, key) = await Platform.Admin.CreateProjectAsync("member");
        var evalId = (await fixture.CreateEvalAsync(key, EvalsFixture.ExactMatchEval()))["id"]!.GetValue<string>();
        var dataSource = """{"type":"jsonl","source":{"type":"file_content","content":[{"item":{"question":"q","expected":"a"},"sample":{"output_text":"a"}}]}}""";

        // Two runs as a dead executor leaves them: in progress, their lease lapsed, one on its first attempt and one
        // on its last.
        await using (var connection = new Npgsql.NpgsqlConnection(Platform.EvaluationSettings["ConnectionStrings:evaluationdb"]))
        {
            await connection.OpenAsync();
            foreach (var (id, attempts) in new[] { ("evalrun_crashedonce000000000", 1), ("evalrun_crashedthrice0000000", 3) })
            {
                await using var insert = new Npgsql.NpgsqlCommand(
                    """
                    INSERT INTO eval_runs ("Id", "EvalId", "ProjectId", "Name", "Status", "DataSource", "Metadata", "CreatedAt", "Total", "Errored", "Failed", "Passed",
                                           "PerModelUsage", "PerCriterion", "Attempts", "LeaseOwner", "LeaseUntil")
                    VALUES (@id, @eval, @project, 'crashed', 'in_progress', @source, '{}', now(), 0, 0, 0, 0, '[]', '[]', @attempts, 'dead-executor', now() - interval '1 minute')
                    """, connection);
                insert.Parameters.AddWithValue("id", id);
                insert.Parameters.AddWithValue("eval", evalId);
                insert.Parameters.AddWithValue("project", projectId);
                insert.Parameters.AddWithValue("source", dataSource);
                insert.Parameters.AddWithValue("attempts", attempts);
                Assert.Equal(1, await insert.ExecuteNonQueryAsync());
            }
        }

        var resumed = await fixture.WaitForRunAsync(key, evalId, "evalrun_crashedonce000000000");
        Assert.Equal("completed", resumed["status"]!.GetValue<string>());
        Assert.Equal(1, resumed["result_counts"]!["passed"]!.GetValue<int>());
        var abandoned = await fixture.WaitForRunAsync(key, evalId, "evalrun_crashedthrice0000000");
        Assert.Equal("failed", abandoned["status"]!.GetValue<string>());
        Assert.Equal("run_interrupted", abandoned["error"]!["code"]!.GetValue<string>());
    }

    [Fact]
    public async Task Comparing_a_tuned_run_with_its_baseline_gives_the_promotion_verdict()
    {
        var (_, key) = await Platform.Admin.CreateProjectAsync("member");
        var evalId = (await fixture.CreateEvalAsync(key, EvalsFixture.ExactMatchEval()))["id"]!.GetValue<string>();
        async Task<string> RunAsync(params string[] outputs)
        {
            var run = await fixture.CreateRunAsync(key, evalId, new
            {
                data_source = new
                {
                    type = "jsonl",
                    source = new { type = "file_content", content = outputs.Select((output, i) => new { item = new { question = $"q{i}", expected = "billing" }, sample = new { output_text = output } }).ToArray() },
                },
            });
            return (await fixture.WaitForRunAsync(key, evalId, run["id"]!.GetValue<string>()))["id"]!.GetValue<string>();
        }

        var baseline = await RunAsync("billing", "support", "billing", "nonsense");
        var tuned = await RunAsync("billing", "billing", "billing", "billing");
        using var http = Platform.Http(key);
        var comparison = EvalsFixture.Json(await http.GetStringAsync($"/v1/evals/{evalId}/compare?baseline_run_id={baseline}&candidate_run_id={tuned}&min_improvement=0.25"));
        Assert.Equal(4, comparison.GetProperty("items_compared").GetInt32());
        Assert.Equal(0.5, comparison.GetProperty("baseline_pass_rate").GetDouble());
        Assert.Equal(1.0, comparison.GetProperty("candidate_pass_rate").GetDouble());
        Assert.Equal(2, comparison.GetProperty("improved").GetInt32());
        Assert.Equal(0, comparison.GetProperty("regressed").GetInt32());
        Assert.True(comparison.GetProperty("promote").GetBoolean());
        var exact = comparison.GetProperty("per_testing_criteria")[0];
        Assert.Equal("exact", exact.GetProperty("testing_criteria").GetString());
        Assert.Equal(1.0, exact.GetProperty("candidate_mean_score").GetDouble());

        var strict = EvalsFixture.Json(await http.GetStringAsync($"/v1/evals/{evalId}/compare?baseline_run_id={baseline}&candidate_run_id={tuned}&min_improvement=0.6"));
        Assert.False(strict.GetProperty("promote").GetBoolean());
        var backwards = EvalsFixture.Json(await http.GetStringAsync($"/v1/evals/{evalId}/compare?baseline_run_id={tuned}&candidate_run_id={baseline}"));
        Assert.False(backwards.GetProperty("promote").GetBoolean());
        Assert.Equal(2, backwards.GetProperty("regressed").GetInt32());
        Assert.Equal(HttpStatusCode.BadRequest, (await http.GetAsync($"/v1/evals/{evalId}/compare?baseline_run_id={baseline}")).StatusCode);
    }

    [Fact]
    public async Task Evals_list_newest_first_update_and_delete_with_their_runs()
    {
        var (_, key) = await Platform.Admin.CreateProjectAsync("member");
        var ids = new List<string>();
        for (var i = 0; i < 3; i++)
        {
            ids.Add((await fixture.CreateEvalAsync(key, EvalsFixture.ExactMatchEval($"eval-{i}")))["id"]!.GetValue<string>());
        }

        var client = fixture.Evals(key);
        var first = TrainingPlatform.JsonOf(await client.GetEvaluationsAsync(2, "created_at", "desc", null, new RequestOptions()));
        Assert.True(first["has_more"]!.GetValue<bool>());
        var second = TrainingPlatform.JsonOf(await client.GetEvaluationsAsync(2, "created_at", "desc", first["last_id"]!.GetValue<string>(), new RequestOptions()));
        Assert.False(second["has_more"]!.GetValue<bool>());
        var listed = first["data"]!.AsArray().Concat(second["data"]!.AsArray()).Select(eval => eval!["id"]!.GetValue<string>()).ToList();
        Assert.Equal(Enumerable.Reverse(ids), listed);

        var updated = TrainingPlatform.JsonOf(await client.UpdateEvaluationAsync(ids[0], TrainingPlatform.JsonBody(new { name = "renamed", metadata = new { stage = "prod" } })));
        Assert.Equal("renamed", updated["name"]!.GetValue<string>());
        Assert.Equal("prod", updated["metadata"]!["stage"]!.GetValue<string>());

        var run = await fixture.CreateRunAsync(key, ids[0], new { data_source = new { type = "jsonl", source = new { type = "file_content", content = new[] { new { item = new { question = "q", expected = "a" } } } } } });
        await fixture.WaitForRunAsync(key, ids[0], run["id"]!.GetValue<string>());
        var deleted = TrainingPlatform.JsonOf(await client.DeleteEvaluationAsync(ids[0], new RequestOptions()));
        Assert.True(deleted["deleted"]!.GetValue<bool>());
        Assert.Equal("eval.deleted", deleted["object"]!.GetValue<string>());
        using var http = Platform.Http(key);
        Assert.Equal(HttpStatusCode.NotFound, (await http.GetAsync($"/v1/evals/{ids[0]}")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await http.GetAsync($"/v1/evals/{ids[0]}/runs/{run["id"]!.GetValue<string>()}")).StatusCode);
    }

    [Fact]
    public async Task Readers_read_evals_but_cannot_create_or_run_them()
    {
        var (projectId, memberKey) = await Platform.Admin.CreateProjectAsync("member");
        var evalId = (await fixture.CreateEvalAsync(memberKey, EvalsFixture.ExactMatchEval()))["id"]!.GetValue<string>();
        using var admin = Platform.Http(TrainingPlatform.AdminKey);
        var readerKey = EvalsFixture.Json(await (await admin.PostAsJsonAsync($"/admin/v1/projects/{projectId}/keys", new { name = "reader", role = "reader" })).Content.ReadAsStringAsync()).GetProperty("value").GetString()!;
        using var reader = Platform.Http(readerKey);
        Assert.Equal(HttpStatusCode.OK, (await reader.GetAsync($"/v1/evals/{evalId}")).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await reader.PostAsJsonAsync("/v1/evals", EvalsFixture.ExactMatchEval())).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await reader.PostAsJsonAsync($"/v1/evals/{evalId}/runs", new { data_source = new { type = "jsonl" } })).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await reader.DeleteAsync($"/v1/evals/{evalId}")).StatusCode);
    }

    [Fact]
    public async Task Another_project_reaches_none_of_an_eval_its_runs_or_the_files_they_read()
    {
        var (_, ownerKey) = await Platform.Admin.CreateProjectAsync("member");
        var (_, otherKey) = await Platform.Admin.CreateProjectAsync("owner");
        var evalId = (await fixture.CreateEvalAsync(ownerKey, EvalsFixture.ExactMatchEval()))["id"]!.GetValue<string>();
        OpenAIFile file = await Platform.Files(ownerKey).UploadFileAsync(BinaryData.FromString("{\"item\":{\"question\":\"q\",\"expected\":\"a\"}}\n"), "items.jsonl", FileUploadPurpose.Evaluations);
        var run = await fixture.CreateRunAsync(ownerKey, evalId, new { data_source = new { type = "jsonl", source = new { type = "file_id", id = file.Id } } });
        var runId = (await fixture.WaitForRunAsync(ownerKey, evalId, run["id"]!.GetValue<string>()))["id"]!.GetValue<string>();
        var itemId = (await fixture.OutputItemsAsync(ownerKey, evalId, runId))[0]["id"]!.GetValue<string>();

        using var other = Platform.Http(otherKey);
        foreach (var path in new[] { $"/v1/evals/{evalId}", $"/v1/evals/{evalId}/runs", $"/v1/evals/{evalId}/runs/{runId}", $"/v1/evals/{evalId}/runs/{runId}/output_items", $"/v1/evals/{evalId}/runs/{runId}/output_items/{itemId}" })
        {
            Assert.Equal(HttpStatusCode.NotFound, (await other.GetAsync(path)).StatusCode);
        }

        Assert.DoesNotContain(evalId, await other.GetStringAsync("/v1/evals"), StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.NotFound, (await other.PostAsync($"/v1/evals/{evalId}/runs/{runId}", null)).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await other.DeleteAsync($"/v1/evals/{evalId}")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await other.PostAsJsonAsync($"/v1/evals/{evalId}/runs", new { data_source = new { type = "jsonl", source = new { type = "file_id", id = file.Id } } })).StatusCode);

        // Its own eval over the owner's file: refused at create, naming the file, and no run is made.
        var otherEval = (await fixture.CreateEvalAsync(otherKey, EvalsFixture.ExactMatchEval()))["id"]!.GetValue<string>();
        var stolen = await other.PostAsJsonAsync($"/v1/evals/{otherEval}/runs", new { data_source = new { type = "jsonl", source = new { type = "file_id", id = file.Id } } });
        Assert.Equal(HttpStatusCode.NotFound, stolen.StatusCode);
        Assert.Equal("data_source.source.id", EvalsFixture.Json(await stolen.Content.ReadAsStringAsync()).GetProperty("error").GetProperty("param").GetString());
        Assert.Empty(EvalsFixture.Json(await other.GetStringAsync($"/v1/evals/{otherEval}/runs")).GetProperty("data").EnumerateArray());

        // The owner's eval still has exactly its one run.
        Assert.Single(TrainingPlatform.JsonOf(await fixture.Evals(ownerKey).GetEvaluationRunsAsync(evalId, null, null, null, null, new RequestOptions()))["data"]!.AsArray());
    }
}
