using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using OpenAI.Chat;
using OpenAI.FineTuning;

namespace FineTunePlatform.Training.Tests;

/// <summary>The fine-tuning API end to end through the OpenAI .NET SDK: real training on the built-in CPU model.</summary>
public sealed class FineTuningJobsTests(FineTuningFixture fixture) : IClassFixture<FineTuningFixture>
{
    private TrainingPlatform Platform => fixture.Platform;

    [Fact]
    public async Task A_job_created_with_the_sdk_trains_to_a_callable_model_with_events_checkpoints_and_results()
    {
        var (projectId, key) = fixture.TeamA;
        var client = Platform.FineTuning(key);

        // "auto" everywhere: resolved at creation and shown on the job.
        var job = await client.FineTuneAsync("local-nano", fixture.TeamAFile, waitUntilCompleted: false, new FineTuningOptions { Suffix = "tickets" });
        Assert.StartsWith("ftjob-", job.JobId, StringComparison.Ordinal);
        var created = await Platform.GetJobAsync(key, job.JobId);
        var hyperparameters = created.GetProperty("hyperparameters");
        // The built-in presets' rule: a batch of 2 (at least), and epochs for at least 500 optimizer steps (5 per epoch),
        // at most 40 epochs.
        Assert.Equal(40, hyperparameters.GetProperty("n_epochs").GetInt32());
        Assert.Equal(2, hyperparameters.GetProperty("batch_size").GetInt32());
        const int steps = 200;
        Assert.Equal(JsonValueKind.Number, created.GetProperty("seed").ValueKind);

        await job.WaitForCompletionAsync();

        Assert.Equal(FineTuningStatus.Succeeded, job.Status);
        Assert.Equal($"ft:local-nano:{projectId}:tickets:{job.JobId}", job.Value);
        // The SDK does not copy trained_tokens onto the job it updates while waiting; read the wire object.
        var finished = await Platform.GetJobAsync(key, job.JobId);
        // The charge is the estimate the file's report showed for this model: its tokens per epoch, times the epochs.
        using (var reportClient = Platform.Http(key))
        {
            using var report = JsonDocument.Parse(await reportClient.GetStringAsync($"/v1/files/{fixture.TeamAFile}/report?model=local-nano"));
            var fit = report.RootElement.GetProperty("model_fits").EnumerateArray().Single();
            Assert.Equal(fit.GetProperty("tokens_per_epoch").GetInt64() * 40, finished.GetProperty("trained_tokens").GetInt64());
        }

        Assert.Equal(JsonValueKind.Number, finished.GetProperty("finished_at").ValueKind);
        Assert.Equal(JsonValueKind.Null, finished.GetProperty("estimated_finish").ValueKind);

        // Events, newest first, with OpenAI's metrics data.
        var events = new List<FineTuningEvent>();
        await foreach (var item in job.GetEventsAsync(new GetEventsOptions { PageSize = 100 }))
        {
            events.Add(item);
        }

        Assert.Equal("The job has successfully completed", events[0].Message);
        Assert.Contains(events, item => item.Message == "Fine-tuning job started");
        var metrics = events.Where(item => item.Kind == FineTuningJobEventKind.Metrics).ToList();
        Assert.Equal(steps, metrics.Count);
        // The job says what "auto" resolved to and why.
        var resolved = events.Single(item => item.Message.StartsWith("Hyperparameters: ", StringComparison.Ordinal));
        Assert.Contains("n_epochs 40: at least 500 optimizer steps", resolved.Message, StringComparison.Ordinal);
        Assert.True(events.Select(item => item.CreatedAt).SequenceEqual(events.Select(item => item.CreatedAt).OrderByDescending(at => at)));

        // The last three epochs' checkpoints, each a model id.
        var checkpoints = new List<FineTuningCheckpoint>();
        await foreach (var checkpoint in job.GetCheckpointsAsync())
        {
            checkpoints.Add(checkpoint);
        }

        Assert.Equal([steps, steps - 5, steps - 10], checkpoints.Select(checkpoint => checkpoint.StepNumber));
        Assert.All(checkpoints, checkpoint => Assert.Equal($"{job.Value}:ckpt-step-{checkpoint.StepNumber}", checkpoint.ModelId));
        Assert.All(checkpoints, checkpoint => Assert.StartsWith("ftckpt_", checkpoint.Id, StringComparison.Ordinal));

        // The results file is a fine-tune-results CSV in the project's files.
        using var http = Platform.Http(key);
        var jobJson = await Platform.GetJobAsync(key, job.JobId);
        var resultFile = jobJson.GetProperty("result_files")[0].GetString()!;
        var csv = await http.GetStringAsync($"/v1/files/{resultFile}/content");
        var rows = csv.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal("step,train_loss,train_accuracy,valid_loss,valid_mean_token_accuracy", rows[0]);
        Assert.Equal(steps + 1, rows.Length);

        // The training tokens reach the project's usage (from the job-finished event), once.
        var trainedTokens = finished.GetProperty("trained_tokens").GetInt64();
        JsonElement? trainingUsage = null;
        for (var deadline = DateTime.UtcNow.AddSeconds(30); trainingUsage is null && DateTime.UtcNow < deadline; await Task.Delay(100))
        {
            trainingUsage = JsonDocument.Parse(await http.GetStringAsync("/v1/usage")).RootElement.GetProperty("data").EnumerateArray()
                .Where(row => row.GetProperty("api_key_id").GetString() == job.JobId).Cast<JsonElement?>().FirstOrDefault();
        }

        Assert.NotNull(trainingUsage);
        Assert.Equal(trainedTokens, trainingUsage.Value.GetProperty("training_tokens").GetInt64());
        Assert.Equal("local-nano", trainingUsage.Value.GetProperty("model").GetString());

        // The model is listed and answers chat completions, as does a checkpoint.
        var models = JsonDocument.Parse(await http.GetStringAsync("/v1/models")).RootElement.GetProperty("data").EnumerateArray().Select(model => model.GetProperty("id").GetString()).ToList();
        Assert.Contains(job.Value, models);
        foreach (var model in new[] { job.Value!, checkpoints[1].ModelId })
        {
            var completion = await Platform.Chat(key, model).CompleteChatAsync([new UserChatMessage("ticket 3: refund?")], new ChatCompletionOptions { MaxOutputTokenCount = 8, Temperature = 0 });
            Assert.Equal(model, completion.Value.Model);
            Assert.True(completion.Value.Usage.OutputTokenCount > 0);
        }

        // Streaming too: the deltas add up to the answer the same request gets without streaming.
        var options = new ChatCompletionOptions { MaxOutputTokenCount = 8, Temperature = 0 };
        var whole = await Platform.Chat(key, job.Value!).CompleteChatAsync([new UserChatMessage("ticket 5: refund?")], options);
        var streamed = new System.Text.StringBuilder();
        ChatFinishReason? finish = null;
        await foreach (var update in Platform.Chat(key, job.Value!).CompleteChatStreamingAsync([new UserChatMessage("ticket 5: refund?")], options))
        {
            streamed.Append(string.Concat(update.ContentUpdate.Select(part => part.Text)));
            finish ??= update.FinishReason;
        }

        Assert.NotNull(finish);
        Assert.Equal(string.Concat(whole.Value.Content.Select(part => part.Text)), streamed.ToString());
    }

    [Fact]
    public async Task A_validation_file_gives_validation_metrics_on_checkpoints_and_in_the_results()
    {
        var (_, key) = fixture.TeamA;
        var validation = await Platform.UploadTrainingFileAsync(key, examples: 10);
        using var http = Platform.Http(key);
        var response = await http.PostAsJsonAsync("/v1/fine_tuning/jobs", new
        {
            model = "local-nano",
            training_file = fixture.TeamAFile,
            validation_file = validation,
            hyperparameters = new { n_epochs = 2, batch_size = 5 },
        });
        var jobId = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("id").GetString()!;
        var job = await Platform.WaitForJobAsync(key, jobId, TrainingPlatform.Finished);
        Assert.Equal("succeeded", job.GetProperty("status").GetString());
        Assert.Equal(validation, job.GetProperty("validation_file").GetString());

        var checkpoints = JsonDocument.Parse(await http.GetStringAsync($"/v1/fine_tuning/jobs/{jobId}/checkpoints")).RootElement.GetProperty("data");
        Assert.Equal(2, checkpoints.GetArrayLength());
        foreach (var checkpoint in checkpoints.EnumerateArray())
        {
            Assert.True(checkpoint.GetProperty("metrics").GetProperty("valid_loss").GetDouble() > 0);
            Assert.InRange(checkpoint.GetProperty("metrics").GetProperty("valid_mean_token_accuracy").GetDouble(), 0, 1);
        }

        var csv = await http.GetStringAsync($"/v1/files/{job.GetProperty("result_files")[0].GetString()}/content");
        // The workers here validate every 2 steps: steps 2 and 4 carry validation metrics, steps 1 and 3 do not.
        var rows = csv.Split('\n', StringSplitOptions.RemoveEmptyEntries).Skip(1).Select(row => row.Split(',')).ToList();
        Assert.Equal(["1", "2", "3", "4"], rows.Select(row => row[0]));
        Assert.Equal([false, true, false, true], rows.Select(row => row[3].Length > 0));
    }

    [Fact]
    public async Task A_dpo_job_trains_on_preference_data_and_each_method_refuses_the_other_format()
    {
        var (_, key) = fixture.TeamA;
        var lines = string.Concat(Enumerable.Range(0, 12).Select(i => JsonSerializer.Serialize(new
        {
            input = new { messages = new[] { new { role = "user", content = $"order {i} is late" } } },
            preferred_output = new[] { new { role = "assistant", content = "Sorry, escalated." } },
            non_preferred_output = new[] { new { role = "assistant", content = "not my problem" } },
        }) + "\n"));
        var preferences = (await Platform.Files(key).UploadFileAsync(BinaryData.FromString(lines), "prefs.jsonl", OpenAI.Files.FileUploadPurpose.FineTune)).Value.Id;
        using var http = Platform.Http(key);

        var created = await http.PostAsJsonAsync("/v1/fine_tuning/jobs", new
        {
            model = "local-nano",
            training_file = preferences,
            method = new { type = "dpo", dpo = new { hyperparameters = new { beta = 0.2, n_epochs = 2, batch_size = 4 } } },
        });
        var body = await created.Content.ReadAsStringAsync();
        Assert.True(created.IsSuccessStatusCode, body);
        var jobId = JsonDocument.Parse(body).RootElement.GetProperty("id").GetString()!;
        var job = await Platform.WaitForJobAsync(key, jobId, TrainingPlatform.Finished);
        Assert.Equal("succeeded", job.GetProperty("status").GetString());
        Assert.Equal("dpo", job.GetProperty("method").GetProperty("type").GetString());
        Assert.Equal(0.2, job.GetProperty("method").GetProperty("dpo").GetProperty("hyperparameters").GetProperty("beta").GetDouble());
        var sdkJob = await Platform.FineTuning(key).GetJobAsync(jobId);
        Assert.Equal(FineTuningStatus.Succeeded, sdkJob.Status);
        Assert.Equal(6, await MetricsCountAsync(jobId));

        var supervisedOnPreferences = await http.PostAsJsonAsync("/v1/fine_tuning/jobs", new { model = "local-nano", training_file = preferences });
        Assert.Equal(HttpStatusCode.BadRequest, supervisedOnPreferences.StatusCode);
        Assert.Equal("invalid_training_file", JsonDocument.Parse(await supervisedOnPreferences.Content.ReadAsStringAsync()).RootElement.GetProperty("error").GetProperty("code").GetString());
        var dpoOnChat = await http.PostAsJsonAsync("/v1/fine_tuning/jobs", new { model = "local-nano", training_file = fixture.TeamAFile, method = new { type = "dpo" } });
        Assert.Equal(HttpStatusCode.BadRequest, dpoOnChat.StatusCode);
        var badBeta = await http.PostAsJsonAsync("/v1/fine_tuning/jobs", new { model = "local-nano", training_file = preferences, method = new { type = "dpo", dpo = new { hyperparameters = new { beta = 0 } } } });
        Assert.Equal("hyperparameters.beta", JsonDocument.Parse(await badBeta.Content.ReadAsStringAsync()).RootElement.GetProperty("error").GetProperty("param").GetString());
    }

    [Fact]
    public async Task Jobs_list_newest_first_page_with_after_and_filter_by_metadata()
    {
        var (_, key) = await Platform.Admin.CreateProjectAsync("member");
        var file = await Platform.UploadTrainingFileAsync(key);
        var ids = new List<string>();
        for (var i = 0; i < 3; i++)
        {
            var created = await Platform.CreateJobAsync(key, file, epochs: 1, metadata: new Dictionary<string, string> { ["team"] = i == 1 ? "search" : "billing" });
            ids.Add(created.GetProperty("id").GetString()!);
        }

        var client = Platform.FineTuning(key);
        var listed = new List<string>();
        await foreach (var job in client.GetJobsAsync(new FineTuningJobCollectionOptions { PageSize = 2 }))
        {
            listed.Add(job.JobId);
        }

        Assert.Equal(Enumerable.Reverse(ids), listed);

        using var http = Platform.Http(key);
        var search = JsonDocument.Parse(await http.GetStringAsync("/v1/fine_tuning/jobs?metadata[team]=search")).RootElement.GetProperty("data");
        Assert.Equal([ids[1]], search.EnumerateArray().Select(job => job.GetProperty("id").GetString()));
        Assert.Equal("search", search[0].GetProperty("metadata").GetProperty("team").GetString());
    }

    [Theory]
    [InlineData("""{"model":"local-nano"}""", "training_file")]
    [InlineData("""{"model":"local-nano","training_file":"file-doesnotexist000000000000"}""", "training_file")]
    [InlineData("""{"model":"gpt-9","training_file":"$FILE"}""", "model")]
    [InlineData("""{"model":"local-nano","training_file":"$FILE","suffix":"has:colon"}""", "suffix")]
    [InlineData("""{"model":"local-nano","training_file":"$FILE","method":{"type":"reinforcement"}}""", "method")]
    [InlineData("""{"model":"local-nano","training_file":"$FILE","hyperparameters":{"n_epochs":0}}""", "hyperparameters.n_epochs")]
    [InlineData("""{"model":"local-nano","training_file":"$FILE","hyperparameters":{"batch_size":"big"}}""", "hyperparameters.batch_size")]
    [InlineData("""{"model":"local-nano","training_file":"$FILE","seed":1.5}""", "seed")]
    [InlineData("""{"model":"local-nano","training_file":"$FILE","metadata":{"team":"a\u0000b"}}""", "metadata")]
    public async Task Invalid_jobs_are_400s_naming_the_param_and_create_nothing(string body, string param)
    {
        var (_, key) = fixture.TeamA;
        using var http = Platform.Http(key);
        var before = JsonDocument.Parse(await http.GetStringAsync("/v1/fine_tuning/jobs?limit=100")).RootElement.GetProperty("data").GetArrayLength();

        var response = await http.PostAsync("/v1/fine_tuning/jobs", new StringContent(body.Replace("$FILE", fixture.TeamAFile, StringComparison.Ordinal), System.Text.Encoding.UTF8, "application/json"));

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var error = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("error");
        Assert.Equal(param, error.GetProperty("param").GetString());
        Assert.Equal("invalid_request_error", error.GetProperty("type").GetString());
        var after = JsonDocument.Parse(await http.GetStringAsync("/v1/fine_tuning/jobs?limit=100")).RootElement.GetProperty("data").GetArrayLength();
        Assert.Equal(before, after);
    }

    [Fact]
    public async Task A_file_with_validation_errors_or_of_another_project_cannot_be_trained_on()
    {
        var (_, key) = fixture.TeamA;
        var bad = await Platform.Files(key).UploadFileAsync(BinaryData.FromString("{\"messages\": []}\n"), "bad.jsonl", OpenAI.Files.FileUploadPurpose.FineTune);
        using var http = Platform.Http(key);
        var response = await http.PostAsJsonAsync("/v1/fine_tuning/jobs", new { model = "local-nano", training_file = bad.Value.Id });
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal("invalid_training_file", JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("error").GetProperty("code").GetString());

        using var other = Platform.Http(fixture.TeamB.Key);
        var foreign = await other.PostAsJsonAsync("/v1/fine_tuning/jobs", new { model = "local-nano", training_file = fixture.TeamAFile });
        Assert.Equal(HttpStatusCode.BadRequest, foreign.StatusCode);
        Assert.Equal("training_file", JsonDocument.Parse(await foreign.Content.ReadAsStringAsync()).RootElement.GetProperty("error").GetProperty("param").GetString());
    }

    [Fact]
    public async Task Cancel_stops_a_running_job_within_a_second_and_a_finished_job_cannot_be_cancelled()
    {
        var (_, key) = fixture.TeamA;
        var created = await Platform.CreateJobAsync(key, fixture.TeamAFile, epochs: 50);
        var jobId = created.GetProperty("id").GetString()!;
        await Platform.WaitForJobAsync(key, jobId, job => job.GetProperty("status").GetString() == "running");
        await WaitForMetricsAsync(jobId);

        var job = await Platform.FineTuning(key).GetJobAsync(jobId);
        await job.CancelAndUpdateAsync();
        Assert.Equal(FineTuningStatus.Cancelled, job.Status);

        // The worker hears of it on its next heartbeat and stops at the next step: no metrics a second later.
        await Task.Delay(TimeSpan.FromSeconds(1));
        var settled = await MetricsCountAsync(jobId);
        await Task.Delay(TimeSpan.FromSeconds(1));
        Assert.Equal(settled, await MetricsCountAsync(jobId));

        using var http = Platform.Http(key);
        var again = await http.PostAsync($"/v1/fine_tuning/jobs/{jobId}/cancel", null);
        Assert.Equal(HttpStatusCode.BadRequest, again.StatusCode);
        Assert.Equal("invalid_state", JsonDocument.Parse(await again.Content.ReadAsStringAsync()).RootElement.GetProperty("error").GetProperty("code").GetString());
    }

    [Fact]
    public async Task Pause_then_resume_continues_from_the_last_checkpoint_to_success()
    {
        var (_, key) = fixture.TeamA;
        // Enough epochs that the job is still running when its first checkpoint is seen (a fast machine finished eight
        // epochs between the two and the pause met a succeeded job).
        var created = await Platform.CreateJobAsync(key, fixture.TeamAFile, epochs: 24);
        var jobId = created.GetProperty("id").GetString()!;
        using var http = Platform.Http(key);
        await WaitAsync(async () => JsonDocument.Parse(await http.GetStringAsync($"/v1/fine_tuning/jobs/{jobId}/checkpoints")).RootElement.GetProperty("data").GetArrayLength() > 0);

        var paused = await http.PostAsync($"/v1/fine_tuning/jobs/{jobId}/pause", null);
        var pausedBody = await paused.Content.ReadAsStringAsync();
        Assert.True(paused.StatusCode == HttpStatusCode.OK, pausedBody);
        Assert.Equal("paused", JsonDocument.Parse(pausedBody).RootElement.GetProperty("status").GetString());
        var resumed = await http.PostAsync($"/v1/fine_tuning/jobs/{jobId}/resume", null);
        Assert.Equal(HttpStatusCode.OK, resumed.StatusCode);

        // A loaded machine (CI beside other work) trains this job in several minutes; the bound is only a hang guard.
        var finished = await Platform.WaitForJobAsync(key, jobId, TrainingPlatform.Finished, TimeSpan.FromMinutes(8));
        Assert.Equal("succeeded", finished.GetProperty("status").GetString());
        var messages = await MessagesAsync(key, jobId);
        Assert.Contains(messages, message => message.StartsWith("Resuming from the checkpoint at step", StringComparison.Ordinal));
        Assert.Single(messages, message => message.StartsWith("New fine-tuned model created", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Pause_resume_and_cancel_racing_the_scheduler_and_the_workers_never_answer_a_server_error()
    {
        // Each request lands while the scheduler dispatches the job or a worker reports on it (created or resumed a
        // moment ago, running): both change the same row. The caller must get the transition or a 400 for a state
        // that no longer allows it, never a 500 for the race.
        var (_, key) = fixture.TeamA;
        using var http = Platform.Http(key);
        var jobIds = new List<string>();
        for (var i = 0; i < 6; i++)
        {
            jobIds.Add((await Platform.CreateJobAsync(key, fixture.TeamAFile, epochs: 20)).GetProperty("id").GetString()!);
        }

        var answers = new List<(string Request, HttpStatusCode Status, string Body)>();
        await Task.WhenAll(jobIds.Select(async jobId =>
        {
            foreach (var action in new[] { "pause", "resume", "pause", "resume", "pause", "resume", "cancel" })
            {
                var response = await http.PostAsync($"/v1/fine_tuning/jobs/{jobId}/{action}", null);
                var body = await response.Content.ReadAsStringAsync();
                lock (answers)
                {
                    answers.Add(($"{action} {jobId}", response.StatusCode, body));
                }
            }
        }));

        Assert.All(answers, answer => Assert.True(
            answer.Status is HttpStatusCode.OK or HttpStatusCode.BadRequest, $"{answer.Request}: {(int)answer.Status} {answer.Body}"));
        Assert.All(answers.Where(answer => answer.Status == HttpStatusCode.BadRequest), answer =>
            Assert.Equal("invalid_state", JsonDocument.Parse(answer.Body).RootElement.GetProperty("error").GetProperty("code").GetString()));
        foreach (var jobId in jobIds)
        {
            var job = JsonDocument.Parse(await http.GetStringAsync($"/v1/fine_tuning/jobs/{jobId}")).RootElement;
            Assert.Equal("cancelled", job.GetProperty("status").GetString());
        }
    }

    [Fact]
    public async Task The_event_stream_delivers_every_event_until_the_job_ends()
    {
        var (_, key) = fixture.TeamA;
        var created = await Platform.CreateJobAsync(key, fixture.TeamAFile, epochs: 2);
        var jobId = created.GetProperty("id").GetString()!;
        using var http = Platform.Http(key);
        using var response = await http.GetAsync($"/v1/fine_tuning/jobs/{jobId}/events?stream=true", HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
        var streamed = new List<string>();
        while (await reader.ReadLineAsync() is { } line)
        {
            if (line.StartsWith("data: ", StringComparison.Ordinal))
            {
                streamed.Add(line["data: ".Length..]);
            }
        }

        Assert.Equal("[DONE]", streamed[^1]);
        var messages = streamed.SkipLast(1).Select(data => JsonDocument.Parse(data).RootElement.GetProperty("message").GetString()).ToList();
        Assert.Equal("The job has successfully completed", messages[^1]);
        Assert.Equal(Enumerable.Reverse(await MessagesAsync(key, jobId)), messages);
    }

    [Fact]
    public async Task A_broken_event_stream_resumes_after_its_last_event_id_with_nothing_repeated_or_missed()
    {
        var (_, key) = fixture.TeamA;
        var created = await Platform.CreateJobAsync(key, fixture.TeamAFile, epochs: 3);
        var jobId = created.GetProperty("id").GetString()!;
        using var http = Platform.Http(key);

        // The first connection breaks after five events (the client goes away, as when its gateway dies).
        var first = await ReadStreamAsync(http, jobId, lastEventId: null, stopAfter: 5);
        Assert.Equal(5, first.Count);
        var second = await ReadStreamAsync(http, jobId, lastEventId: first[^1].Id, stopAfter: null);
        Assert.Equal("[DONE]", second[^1].Data);

        var streamed = first.Concat(second.SkipLast(1)).ToList();
        Assert.All(streamed, item => Assert.Equal(item.Id, JsonDocument.Parse(item.Data).RootElement.GetProperty("id").GetString()));
        var messages = streamed.Select(item => JsonDocument.Parse(item.Data).RootElement.GetProperty("message").GetString()).ToList();
        Assert.Equal(Enumerable.Reverse(await MessagesAsync(key, jobId)), messages);

        // An id that is not this job's event is the caller's mistake.
        using var request = new HttpRequestMessage(HttpMethod.Get, $"/v1/fine_tuning/jobs/{jobId}/events?stream=true");
        request.Headers.Add("Last-Event-ID", "ft-event-not-there");
        using var refused = await http.SendAsync(request);
        Assert.Equal(HttpStatusCode.BadRequest, refused.StatusCode);
        Assert.Equal("after", JsonDocument.Parse(await refused.Content.ReadAsStringAsync()).RootElement.GetProperty("error").GetProperty("param").GetString());
    }

    [Fact]
    public async Task The_event_stream_misses_no_event_whose_transaction_commits_after_a_later_one()
    {
        // A job held in the queue (its project may run none at once), so its stream stays open while we write.
        var (projectId, key) = await Platform.Admin.CreateProjectAsync("owner");
        await Platform.Admin.SetTrainingQuotaAsync(projectId, maxConcurrentJobs: 0);
        var file = await Platform.UploadTrainingFileAsync(key);
        var jobId = (await Platform.CreateJobAsync(key, file, epochs: 1)).GetProperty("id").GetString()!;
        using var http = Platform.Http(key);
        var streaming = ReadStreamAsync(http, jobId, lastEventId: null, stopAfter: null);

        // Two concurrent writers: the first takes the lower sequence number and commits after the second, whose
        // event the stream sends first. Then the first commits; the stream must still send it.
        await using var early = new Npgsql.NpgsqlConnection(Platform.TrainingSettings["ConnectionStrings:trainingdb"]);
        await using var late = new Npgsql.NpgsqlConnection(Platform.TrainingSettings["ConnectionStrings:trainingdb"]);
        await early.OpenAsync();
        await late.OpenAsync();
        await using var earlyTransaction = await early.BeginTransactionAsync();
        var earlySequence = await InsertEventAsync(early, earlyTransaction, jobId, "written first, committed last");
        await using (var lateTransaction = await late.BeginTransactionAsync())
        {
            var lateSequence = await InsertEventAsync(late, lateTransaction, jobId, "written second, committed first");
            Assert.True(lateSequence > earlySequence);
            await lateTransaction.CommitAsync();
        }

        await WaitForMessageAsync(key, jobId, "written second, committed first");
        await Task.Delay(500);
        await earlyTransaction.CommitAsync();
        await WaitForMessageAsync(key, jobId, "written first, committed last");
        await Task.Delay(500);
        await http.PostAsync($"/v1/fine_tuning/jobs/{jobId}/cancel", null);

        var streamed = (await streaming).SkipLast(1).Select(item => JsonDocument.Parse(item.Data).RootElement.GetProperty("message").GetString()).ToList();
        Assert.Single(streamed, message => message == "written second, committed first");
        Assert.Single(streamed, message => message == "written first, committed last");
        Assert.Equal((await MessagesAsync(key, jobId)).Order(), streamed.Order());
    }

    private static async Task<long> InsertEventAsync(Npgsql.NpgsqlConnection connection, Npgsql.NpgsqlTransaction transaction, string jobId, string message)
    {
        await using var insert = new Npgsql.NpgsqlCommand("""
            INSERT INTO job_events ("Id", "JobId", "CreatedAt", "Level", "Message", "Type", "Data")
            VALUES ($1, $2, now(), 'info', $3, 'message', '{}') RETURNING "Sequence"
            """, connection, transaction);
        insert.Parameters.Add(new Npgsql.NpgsqlParameter<string> { TypedValue = "ft-event-" + Guid.NewGuid().ToString("N")[..24] });
        insert.Parameters.Add(new Npgsql.NpgsqlParameter<string> { TypedValue = jobId });
        insert.Parameters.Add(new Npgsql.NpgsqlParameter<string> { TypedValue = message });
        return (long)(await insert.ExecuteScalarAsync())!;
    }

    private async Task WaitForMessageAsync(string key, string jobId, string message)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (!(await MessagesAsync(key, jobId)).Contains(message))
        {
            Assert.True(DateTime.UtcNow < deadline, $"'{message}' never became visible");
            await Task.Delay(50);
        }
    }

    /// <summary>The (id, data) of each server-sent event, up to `stopAfter` events (then the connection is dropped) or the end.</summary>
    private static async Task<List<(string? Id, string Data)>> ReadStreamAsync(HttpClient http, string jobId, string? lastEventId, int? stopAfter)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, $"/v1/fine_tuning/jobs/{jobId}/events?stream=true");
        if (lastEventId is not null)
        {
            request.Headers.Add("Last-Event-ID", lastEventId);
        }

        using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        Assert.True(response.IsSuccessStatusCode, await response.Content.ReadAsStringAsync());
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
        var events = new List<(string? Id, string Data)>();
        string? id = null;
        while (events.Count != stopAfter && await reader.ReadLineAsync() is { } line)
        {
            if (line.StartsWith("id: ", StringComparison.Ordinal))
            {
                id = line["id: ".Length..];
            }
            else if (line.StartsWith("data: ", StringComparison.Ordinal))
            {
                events.Add((id, line["data: ".Length..]));
                id = null;
            }
        }

        return events;
    }

    [Fact]
    public async Task Another_project_sees_nothing_until_granted_and_loses_access_when_revoked()
    {
        var (_, ownerKey) = await Platform.Admin.CreateProjectAsync("owner");
        var (otherProject, otherKey) = await Platform.Admin.CreateProjectAsync("owner");
        var file = await Platform.UploadTrainingFileAsync(ownerKey);
        var created = await Platform.CreateJobAsync(ownerKey, file, epochs: 1, suffix: "shared");
        var jobId = created.GetProperty("id").GetString()!;
        var job = await Platform.WaitForJobAsync(ownerKey, jobId, TrainingPlatform.Finished);
        var model = job.GetProperty("fine_tuned_model").GetString()!;

        // The owner evaluates its model; the other project's eval runs of it are refused at create until it is granted.
        var (ownerEval, ownerRun) = await EvaluateAsync(ownerKey, model);
        Assert.Equal("completed", (await Platform.WaitForEvalRunAsync(ownerKey, ownerEval, ownerRun))["status"]!.GetValue<string>());
        var (otherEval, denied) = await StartEvaluationAsync(otherKey, model);
        await AssertModelNotFoundAsync(denied);

        using var other = Platform.Http(otherKey);
        foreach (var path in new[]
        {
            $"/v1/fine_tuning/jobs/{jobId}", $"/v1/fine_tuning/jobs/{jobId}/events", $"/v1/fine_tuning/jobs/{jobId}/checkpoints", $"/v1/models/{model}",
            $"/v1/evals/{ownerEval}", $"/v1/evals/{ownerEval}/runs/{ownerRun}", $"/v1/evals/{ownerEval}/runs/{ownerRun}/output_items",
        })
        {
            Assert.Equal(HttpStatusCode.NotFound, (await other.GetAsync(path)).StatusCode);
        }

        Assert.Equal(HttpStatusCode.NotFound, (await other.PostAsync($"/v1/fine_tuning/jobs/{jobId}/cancel", null)).StatusCode);
        Assert.DoesNotContain(jobId, await other.GetStringAsync("/v1/fine_tuning/jobs"), StringComparison.Ordinal);
        Assert.DoesNotContain(ownerEval, await other.GetStringAsync("/v1/evals"), StringComparison.Ordinal);
        Assert.DoesNotContain(model, await other.GetStringAsync("/v1/models"), StringComparison.Ordinal);
        Assert.DoesNotContain(jobId, await other.GetStringAsync("/v1/usage"), StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.BadRequest, (await other.PostAsJsonAsync("/v1/fine_tuning/jobs", new { model, training_file = file })).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await other.PostAsJsonAsync("/v1/chat/completions", new { model, messages = new[] { new { role = "user", content = "hi" } } })).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await other.DeleteAsync($"/v1/models/{model}")).StatusCode);

        using var owner = Platform.Http(ownerKey);
        var nobody = await owner.PostAsJsonAsync($"/v1/fine_tuning/checkpoints/{model}/permissions", new { project_ids = new[] { otherProject, "proj_doesnotexist" } });
        Assert.Equal(HttpStatusCode.BadRequest, nobody.StatusCode);
        Assert.Equal("project_ids", JsonDocument.Parse(await nobody.Content.ReadAsStringAsync()).RootElement.GetProperty("error").GetProperty("param").GetString());
        var grant = await owner.PostAsJsonAsync($"/v1/fine_tuning/checkpoints/{model}/permissions", new { project_ids = new[] { otherProject } });
        Assert.Equal(HttpStatusCode.OK, grant.StatusCode);
        var permission = JsonDocument.Parse(await grant.Content.ReadAsStringAsync()).RootElement.GetProperty("data")[0];
        Assert.Equal(otherProject, permission.GetProperty("project_id").GetString());

        Assert.Contains(model, await other.GetStringAsync("/v1/models"), StringComparison.Ordinal);
        var chat = await other.PostAsJsonAsync("/v1/chat/completions", new { model, max_tokens = 4, messages = new[] { new { role = "user", content = "hi" } } });
        Assert.Equal(HttpStatusCode.OK, chat.StatusCode);
        var (_, grantedRun) = await EvaluateAsync(otherKey, model, otherEval);
        Assert.Equal("completed", (await Platform.WaitForEvalRunAsync(otherKey, otherEval, grantedRun))["status"]!.GetValue<string>());
        // A grantee can build on the shared model with its own data.
        var otherFile = await Platform.UploadTrainingFileAsync(otherKey);
        var derived = await Platform.CreateJobAsync(otherKey, otherFile, epochs: 1, model: model, suffix: "derived");
        var derivedJob = await Platform.WaitForJobAsync(otherKey, derived.GetProperty("id").GetString()!, TrainingPlatform.Finished);
        Assert.Equal("succeeded", derivedJob.GetProperty("status").GetString());
        Assert.Equal(model, derivedJob.GetProperty("model").GetString());
        Assert.StartsWith($"ft:local-nano:{otherProject}:derived:", derivedJob.GetProperty("fine_tuned_model").GetString(), StringComparison.Ordinal);

        // A grantee uses the model but does not own it.
        Assert.Equal(HttpStatusCode.Forbidden, (await other.DeleteAsync($"/v1/models/{model}")).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await other.GetAsync($"/v1/fine_tuning/checkpoints/{model}/permissions")).StatusCode);

        var revoke = await owner.DeleteAsync($"/v1/fine_tuning/checkpoints/{model}/permissions/{permission.GetProperty("id").GetString()}");
        Assert.Equal(HttpStatusCode.OK, revoke.StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await other.PostAsJsonAsync("/v1/chat/completions", new { model, messages = new[] { new { role = "user", content = "hi" } } })).StatusCode);
        var (_, revoked) = await StartEvaluationAsync(otherKey, model, otherEval);
        await AssertModelNotFoundAsync(revoked);

        // The job's last checkpoint, granted to the other project before the model is deleted.
        var checkpoint = JsonDocument.Parse(await owner.GetStringAsync($"/v1/fine_tuning/jobs/{jobId}/checkpoints")).RootElement
            .GetProperty("data")[0].GetProperty("fine_tuned_model_checkpoint").GetString()!;
        Assert.Equal(HttpStatusCode.OK, (await owner.PostAsJsonAsync($"/v1/fine_tuning/checkpoints/{checkpoint}/permissions", new { project_ids = new[] { otherProject } })).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await other.PostAsJsonAsync("/v1/chat/completions", new { model = checkpoint, max_tokens = 4, messages = new[] { new { role = "user", content = "hi" } } })).StatusCode);

        var deleted = await owner.DeleteAsync($"/v1/models/{model}");
        Assert.Equal(HttpStatusCode.OK, deleted.StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await owner.GetAsync($"/v1/models/{model}")).StatusCode);

        // Decided for issue 20 (docs/gateway.md): the deleted model's checkpoints belong to its job and stay usable by the
        // owner; every grant on them went with the model, so no other project reaches them.
        Assert.Equal(HttpStatusCode.OK, (await owner.PostAsJsonAsync("/v1/chat/completions", new { model = checkpoint, max_tokens = 4, messages = new[] { new { role = "user", content = "hi" } } })).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await other.PostAsJsonAsync("/v1/chat/completions", new { model = checkpoint, max_tokens = 4, messages = new[] { new { role = "user", content = "hi" } } })).StatusCode);
    }

    /// <summary>Runs a one-item completions eval of `model` as the key's project (creating the eval unless given).</summary>
    private async Task<(string EvalId, string RunId)> EvaluateAsync(string key, string model, string? evalId = null)
    {
        var (id, run) = await StartEvaluationAsync(key, model, evalId);
        using (run)
        {
            var body = await run.Content.ReadAsStringAsync();
            Assert.True(run.StatusCode == HttpStatusCode.Created, body);
            return (id, JsonDocument.Parse(body).RootElement.GetProperty("id").GetString()!);
        }
    }

    /// <summary>A run of a model the project may not use is refused when it is created, naming the model.</summary>
    private static async Task AssertModelNotFoundAsync(HttpResponseMessage run)
    {
        using (run)
        {
            var body = await run.Content.ReadAsStringAsync();
            Assert.True(run.StatusCode == HttpStatusCode.NotFound, body);
            var error = JsonDocument.Parse(body).RootElement.GetProperty("error");
            Assert.Equal(("data_source.model", "model_not_found"), (error.GetProperty("param").GetString(), error.GetProperty("code").GetString()));
        }
    }

    /// <summary>Asks for a one-item completions eval run of `model` as the key's project (creating the eval unless given).</summary>
    private async Task<(string EvalId, HttpResponseMessage Run)> StartEvaluationAsync(string key, string model, string? evalId = null)
    {
        using var http = Platform.Http(key);
        if (evalId is null)
        {
            var eval = await http.PostAsJsonAsync("/v1/evals", new
            {
                data_source_config = new { type = "custom", item_schema = new { type = "object", properties = new { ticket = new { type = "string" } } } },
                testing_criteria = new[] { new { type = "string_check", name = "routed", input = "{{sample.output_text}}", reference = "billing", operation = "ilike" } },
            });
            Assert.Equal(HttpStatusCode.Created, eval.StatusCode);
            evalId = JsonDocument.Parse(await eval.Content.ReadAsStringAsync()).RootElement.GetProperty("id").GetString()!;
        }

        var run = await http.PostAsJsonAsync($"/v1/evals/{evalId}/runs", new
        {
            data_source = new
            {
                type = "completions",
                model,
                input_messages = new { type = "template", template = new[] { new { role = "user", content = "{{item.ticket}}" } } },
                sampling_params = new { max_completion_tokens = 4 },
                source = new { type = "file_content", content = new[] { new { item = new { ticket = "ticket 1: refund?" } } } },
            },
        });
        return (evalId, run);
    }

    private async Task WaitForMetricsAsync(string jobId) => await WaitAsync(async () => await MetricsCountAsync(jobId) > 0);

    /// <summary>Counted in the training database: the API pages events, and this must see every one.</summary>
    private async Task<long> MetricsCountAsync(string jobId) =>
        (await Platform.QueryTrainingAsync($"SELECT count(*) FROM job_events WHERE \"JobId\" = '{jobId}' AND \"Type\" = 'metrics'", reader => reader.GetInt64(0)))[0];

    private async Task<List<string>> MessagesAsync(string key, string jobId)
    {
        var messages = new List<string>();
        await foreach (var item in Platform.FineTuning(key).GetJobAsync(jobId).Result.GetEventsAsync(new GetEventsOptions { PageSize = 100 }))
        {
            messages.Add(item.Message);
        }

        return messages;
    }

    private static async Task WaitAsync(Func<Task<bool>> condition)
    {
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (!await condition())
        {
            Assert.True(DateTime.UtcNow < deadline, "Timed out waiting for a condition.");
            await Task.Delay(50);
        }
    }
}
