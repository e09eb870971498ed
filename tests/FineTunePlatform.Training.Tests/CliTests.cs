using System.Net.Http.Json;
using System.Text.Json;
using System.Text.RegularExpressions;
using FineTunePlatform.Cli;

namespace FineTunePlatform.Training.Tests;

/// <summary>`ftune` against the running platform (real HTTP through the gateway), as a user would run it.</summary>
public sealed class CliTests(FineTuningFixture fixture) : IClassFixture<FineTuningFixture>
{
    private TrainingPlatform Platform => fixture.Platform;

    [Fact]
    public async Task Upload_train_watch_list_and_chat_from_the_command_line()
    {
        var (_, key) = await Platform.Admin.CreateProjectAsync("owner");
        var path = WriteFile(Enumerable.Range(0, 10).Select(i => Example($"ticket {i}: refund?", i % 2 == 0 ? "billing" : "support")));

        var upload = await RunAsync(key, "files", "upload", path);
        Assert.Equal(0, upload.ExitCode);
        Assert.Contains("processed: 10 chat examples", upload.Output, StringComparison.Ordinal);
        var fileId = upload.Output.Split(' ')[0];
        Assert.StartsWith("file-", fileId, StringComparison.Ordinal);

        var job = await RunAsync(key, "jobs", "create", "--model", "local-nano", "--training-file", fileId, "--epochs", "1", "--suffix", "cli", "--watch");
        Assert.True(job.ExitCode == 0, job.Output + job.Error);
        Assert.Contains("Job enqueued", job.Output, StringComparison.Ordinal);
        Assert.Contains("The job has successfully completed", job.Output, StringComparison.Ordinal);
        var last = job.Output.Trim().Split('\n')[^1];
        Assert.Contains("  succeeded  local-nano -> ft:local-nano:", last, StringComparison.Ordinal);
        var model = last[(last.IndexOf("-> ", StringComparison.Ordinal) + 3)..].Trim();
        Assert.Contains(":cli:", model, StringComparison.Ordinal);

        var models = await RunAsync(key, "models", "list");
        Assert.Contains(model, models.Output, StringComparison.Ordinal);
        var chat = await RunAsync(key, "chat", model, "ticket", "3:", "refund?", "--max-tokens", "4", "--temperature", "0");
        Assert.True(chat.ExitCode == 0, chat.Error);
        // The reply the model gives through the SDK, streamed the same.
        var expected = await Platform.Chat(key, model).CompleteChatAsync([new OpenAI.Chat.UserChatMessage("ticket 3: refund?")],
            new OpenAI.Chat.ChatCompletionOptions { MaxOutputTokenCount = 4, Temperature = 0 });
        Assert.Equal(expected.Value.Content[0].Text + Environment.NewLine, chat.Output);
    }

    [Fact]
    public async Task Watching_without_a_terminal_prints_the_events_and_a_tenth_of_the_steps_and_json_prints_every_event()
    {
        var (_, key) = await Platform.Admin.CreateProjectAsync("owner");
        var fileId = (await RunAsync(key, "files", "upload", WriteFile(Enumerable.Range(0, 10).Select(i => Example($"ticket {i}: refund?", "billing"))))).Output.Split(' ')[0];
        // One example a step: 30 steps, three times as many as the summary prints.
        var job = await RunAsync(key, "jobs", "create", "--model", "local-nano", "--training-file", fileId, "--epochs", "3", "--batch-size", "1", "--watch");
        Assert.True(job.ExitCode == 0, job.Output + job.Error);
        var steps = Regex.Matches(job.Output, @"  Step (\d+)/(\d+): training loss=").Select(match => int.Parse(match.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture)).ToList();
        var total = int.Parse(Regex.Match(job.Output, @"  Step \d+/(\d+):").Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
        Assert.Equal(30, total);
        Assert.Equal([1, 3, 6, 9, 12, 15, 18, 21, 24, 27, 30], steps);
        Assert.Contains("Job enqueued", job.Output, StringComparison.Ordinal);
        Assert.DoesNotContain("\u001b", job.Output, StringComparison.Ordinal);
        Assert.Contains("  succeeded  local-nano -> ft:local-nano:", job.Output.Trim().Split('\n')[^1], StringComparison.Ordinal);

        // --json: every event as the platform sent it, one per line, then the job.
        var jobId = job.Output.Split(' ')[0];
        var watched = await RunAsync(key, "jobs", "watch", jobId, "--json");
        Assert.Equal(0, watched.ExitCode);
        var objects = watched.Output.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(line => JsonDocument.Parse(line).RootElement).ToList();
        Assert.All(objects[..^1], jobEvent => Assert.Equal("fine_tuning.job.event", jobEvent.GetProperty("object").GetString()));
        Assert.Equal(30, objects.Count(jobEvent => jobEvent.TryGetProperty("type", out var type) && type.GetString() == "metrics"));
        Assert.Equal(("fine_tuning.job", jobId, "succeeded"), (objects[^1].GetProperty("object").GetString(), objects[^1].GetProperty("id").GetString(), objects[^1].GetProperty("status").GetString()));
    }

    [Fact]
    public async Task With_json_every_command_prints_the_platforms_objects_one_per_line()
    {
        var (_, key) = await Platform.Admin.CreateProjectAsync("owner");
        var upload = await RunAsync(key, "files", "upload", WriteFile(Enumerable.Range(0, 10).Select(i => Example($"ticket {i}: refund?", "billing"))), "--json");
        Assert.True(upload.ExitCode == 0, upload.Error);
        var uploaded = upload.Output.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(line => JsonDocument.Parse(line).RootElement).ToList();
        Assert.Equal(["file", "file.report"], uploaded.Select(item => item.GetProperty("object").GetString()));
        var fileId = uploaded[0].GetProperty("id").GetString()!;
        Assert.Equal(fileId, uploaded[1].GetProperty("file_id").GetString());
        Assert.Equal("processed", uploaded[1].GetProperty("status").GetString());

        // The very object the API serves.
        using var http = Platform.Http(key);
        var served = JsonDocument.Parse(await http.GetStringAsync($"/v1/files/{fileId}/report")).RootElement;
        Assert.True(JsonElement.DeepEquals(served, Single(await RunAsync(key, "files", "report", fileId, "--json"))));
        Assert.True(JsonElement.DeepEquals(JsonDocument.Parse(await http.GetStringAsync("/v1/files")).RootElement, Single(await RunAsync(key, "files", "list", "--json"))));

        var job = Single(await RunAsync(key, "jobs", "create", "--model", "local-nano", "--training-file", fileId, "--epochs", "40", "--json"));
        Assert.Equal("fine_tuning.job", job.GetProperty("object").GetString());
        var jobId = job.GetProperty("id").GetString()!;
        Assert.Equal(jobId, Single(await RunAsync(key, "jobs", "get", jobId, "--json")).GetProperty("id").GetString());
        Assert.Equal(jobId, Single(await RunAsync(key, "jobs", "list", "--json")).GetProperty("data")[0].GetProperty("id").GetString());
        Assert.Equal("cancelled", Single(await RunAsync(key, "jobs", "cancel", jobId, "--json")).GetProperty("status").GetString());

        var models = Single(await RunAsync(key, "models", "list", "--json"));
        Assert.Contains(models.GetProperty("data").EnumerateArray(), model => model.GetProperty("id").GetString() == "local-nano");
        var chat = Single(await RunAsync(key, "chat", "local-nano", "hi", "--max-tokens", "2", "--json"));
        Assert.Equal("chat.completion", chat.GetProperty("object").GetString());
        Assert.Equal("list", Single(await RunAsync(key, "evals", "list", "--json")).GetProperty("object").GetString());

        // Errors stay one line on stderr, and stdout stays empty for the script.
        var missing = await RunAsync(key, "jobs", "get", "ftjob-missing", "--json");
        Assert.Equal((1, ""), (missing.ExitCode, missing.Output));
        Assert.StartsWith("ftune: 404: ", missing.Error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_version_is_the_builds()
    {
        var (exitCode, output, _) = await InvokeAsync("--version");
        Assert.Equal(0, exitCode);
        // The version ftune.dll was built with, not the test host's (System.CommandLine's default names the entry assembly).
        var version = System.Diagnostics.FileVersionInfo.GetVersionInfo(typeof(Ftune).Assembly.Location).ProductVersion;
        Assert.Matches(@"^\d+\.\d+\.\d+(\+[0-9a-f]{7,})?$", version);
        Assert.Equal(version + Environment.NewLine, output);
    }

    private static JsonElement Single((int ExitCode, string Output, string Error) result)
    {
        Assert.True(result.ExitCode == 0, result.Error);
        return JsonDocument.Parse(Assert.Single(result.Output.Split('\n', StringSplitOptions.RemoveEmptyEntries))).RootElement;
    }

    [Fact]
    public async Task Mistakes_are_one_line_with_the_platforms_reason_and_an_exit_code()
    {
        var (_, key) = await Platform.Admin.CreateProjectAsync("owner");
        var bad = WriteFile([Example("hi", "hello"), "{\"messages\": [{\"role\": \"user\", \"content\": \"no answer\"}]}", "not json"]);
        var upload = await RunAsync(key, "files", "upload", bad);
        Assert.Equal(1, upload.ExitCode);
        Assert.Matches(@"\n  line 2[^\n]*assistant", upload.Output);
        Assert.Contains("\n  line 3", upload.Output, StringComparison.Ordinal);

        var job = await RunAsync(key, "jobs", "create", "--model", "local-nano", "--training-file", "file-missing");
        Assert.Equal(1, job.ExitCode);
        Assert.StartsWith("ftune: 400: ", job.Error, StringComparison.Ordinal);
        Assert.Contains("(param training_file, code invalid_training_file)", job.Error, StringComparison.Ordinal);

        var wrongKey = await RunAsync("sk-not-a-key", "models", "list");
        Assert.Equal(1, wrongKey.ExitCode);
        Assert.StartsWith("ftune: 401: ", wrongKey.Error, StringComparison.Ordinal);

        var notUrl = await Ftune.InvokeAsync(["models", "list", "--base-url", "ftp://example", "--api-key", key], TextWriter.Null, new StringWriter());
        Assert.Equal(2, notUrl);
        var usage = new StringWriter();
        Assert.Equal(2, await Ftune.InvokeAsync(["jobs", "create", "--training-file", "file-x"], TextWriter.Null, usage));
        Assert.Contains("--model", usage.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Lists_are_tables_or_empty_and_evals_run_from_the_command_line()
    {
        var (_, key) = await Platform.Admin.CreateProjectAsync("owner");
        Assert.Equal("(empty)" + Environment.NewLine, (await RunAsync(key, "files", "list")).Output);
        Assert.Equal("(empty)" + Environment.NewLine, (await RunAsync(key, "evals", "list")).Output);

        var upload = await RunAsync(key, "files", "upload", WriteFile(Enumerable.Range(0, 10).Select(i => Example($"ticket {i}: refund?", "billing"))));
        var files = await RunAsync(key, "files", "list");
        Assert.Matches(@"^ID +PURPOSE +STATUS +BYTES +CREATED +FILENAME\r?\nfile-\S+ +fine-tune +processed +\d+ +\S+ +ftune-\w+\.jsonl\r?\n$", files.Output);
        Assert.StartsWith(upload.Output.Split(' ')[0], files.Output.Split('\n')[1], StringComparison.Ordinal);
        Assert.Matches(@"\nlocal-nano +system +published\r?\n", (await RunAsync(key, "models", "list")).Output);

        var examples = Path.Combine(FineTunePlatform.Testing.RepositoryRoot.Path, "examples");
        var eval = await RunAsync(key, "evals", "create", Path.Combine(examples, "ticket-eval.json"));
        Assert.True(eval.ExitCode == 0, eval.Error);
        Assert.Matches(@"^eval_\S+  ticket routing  1 testing criteria\r?\n  routed to the right team: string_check", eval.Output);
        var evalId = eval.Output.Split(' ')[0];
        var items = await RunAsync(key, "files", "upload", Path.Combine(examples, "tickets-eval.jsonl"), "--purpose", "evals");
        Assert.True(items.ExitCode == 0, items.Error);
        // The upstream echo model answers each ticket reversed, never a team's name: every item is graded and fails.
        var run = await RunAsync(key, "evals", "runs", "create", evalId, "--model", TrainingPlatform.UpstreamModel,
            "--data-source", Path.Combine(examples, "ticket-eval-source.json"), "--eval-file", items.Output.Split(' ')[0], "--watch");
        Assert.True(run.ExitCode == 0, run.Output + run.Error);
        Assert.Matches($@"\nevalrun_\S+  completed  {TrainingPlatform.UpstreamModel}  passed 0/16\r?\n$", run.Output);
        var runs = await RunAsync(key, "evals", "runs", "list", evalId);
        Assert.Matches($@"^ID +STATUS +PASSED +MODEL +NAME\r?\nevalrun_\S+ +completed +0/16 +{TrainingPlatform.UpstreamModel} ", runs.Output);
        Assert.Contains(evalId, (await RunAsync(key, "evals", "list")).Output, StringComparison.Ordinal);

        var missing = await RunAsync(key, "evals", "runs", "get", evalId, "evalrun_missing");
        Assert.Equal(1, missing.ExitCode);
        Assert.StartsWith("ftune: 404: ", missing.Error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Jobs_pause_resume_and_cancel_from_the_command_line()
    {
        var (_, key) = await Platform.Admin.CreateProjectAsync("owner");
        var fileId = (await RunAsync(key, "files", "upload", WriteFile(Enumerable.Range(0, 10).Select(i => Example($"ticket {i}: refund?", "billing"))))).Output.Split(' ')[0];
        // Enough epochs that it cannot finish before it is paused.
        var created = await RunAsync(key, "jobs", "create", "--model", "local-nano", "--training-file", fileId, "--epochs", "40");
        var jobId = created.Output.Split(' ')[0];
        var paused = await RunAsync(key, "jobs", "pause", jobId);
        Assert.True(paused.ExitCode == 0, paused.Error);
        Assert.StartsWith($"{jobId}  paused  local-nano", paused.Output, StringComparison.Ordinal);
        var resumed = await RunAsync(key, "jobs", "resume", jobId);
        Assert.True(resumed.ExitCode == 0, resumed.Error);
        Assert.DoesNotContain("  paused  ", resumed.Output, StringComparison.Ordinal);
        Assert.Equal(0, (await RunAsync(key, "jobs", "cancel", jobId)).ExitCode);
        var again = await RunAsync(key, "jobs", "resume", jobId);
        Assert.Equal(1, again.ExitCode);
        Assert.Contains("code invalid_state", again.Error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Lora_settings_reach_the_platform_which_refuses_them_on_a_built_in_model()
    {
        var (_, key) = await Platform.Admin.CreateProjectAsync("owner");
        var file = (await RunAsync(key, "files", "upload", WriteFile(Enumerable.Range(0, 10).Select(i => Example($"ticket {i}: refund?", "billing"))))).Output.Split(' ')[0];
        var lora = await RunAsync(key, "jobs", "create", "--model", "local-nano", "--training-file", file, "--lora-rank", "4");
        Assert.Equal(1, lora.ExitCode);
        Assert.Contains("param hyperparameters.lora_rank", lora.Error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_admin_sets_a_projects_and_a_keys_rate_limits_from_the_command_line()
    {
        var (projectId, key) = await Platform.Admin.CreateProjectAsync("owner");
        var project = await RunAsync(TrainingPlatform.AdminKey, "admin", "limits", projectId, "--requests-per-minute", "100");
        Assert.True(project.ExitCode == 0, project.Error);
        Assert.Equal($"{projectId}  requests/min 100  tokens/min default" + Environment.NewLine, project.Output);

        using var admin = Platform.Http(TrainingPlatform.AdminKey);
        var keys = JsonDocument.Parse(await admin.GetStringAsync($"/admin/v1/projects/{projectId}/keys")).RootElement.GetProperty("data");
        var keyId = keys.EnumerateArray().First().GetProperty("id").GetString()!;
        var limited = await RunAsync(TrainingPlatform.AdminKey, "admin", "limits", projectId, "--key", keyId, "--requests-per-minute", "1");
        Assert.True(limited.ExitCode == 0, limited.Error);
        Assert.StartsWith($"{keyId}  requests/min 1", limited.Output, StringComparison.Ordinal);
        // Plain HTTP here: the SDK (and so ftune chat) would wait out the 429's retry-after once before failing.
        using var team = Platform.Http(key);
        var chat = new { model = "local-nano", max_tokens = 1, messages = new[] { new { role = "user", content = "hi" } } };
        Assert.Equal(System.Net.HttpStatusCode.OK, (await team.PostAsJsonAsync("/v1/chat/completions", chat)).StatusCode);
        Assert.Equal(System.Net.HttpStatusCode.TooManyRequests, (await team.PostAsJsonAsync("/v1/chat/completions", chat)).StatusCode);

        // A project key cannot change limits.
        var denied = await RunAsync(key, "admin", "limits", projectId, "--requests-per-minute", "1000");
        Assert.Equal(1, denied.ExitCode);
    }

    [Fact]
    public async Task Usage_mistakes_and_an_unreachable_platform_are_one_line_and_never_a_stack_trace()
    {
        var bare = await InvokeAsync();
        Assert.Equal(2, bare.ExitCode);
        Assert.StartsWith("ftune: Required command was not provided.", bare.Error, StringComparison.Ordinal);
        Assert.Contains("Usage:", bare.Error, StringComparison.Ordinal);
        var unknown = await InvokeAsync("models", "list", "--bogus");
        Assert.Equal(2, unknown.ExitCode);
        Assert.StartsWith("ftune: Unrecognized command or argument '--bogus'", unknown.Error, StringComparison.Ordinal);

        var noApiPath = await InvokeAsync("models", "list", "--base-url", "http://127.0.0.1:8480", "--api-key", "sk-x");
        Assert.Equal(2, noApiPath.ExitCode);
        Assert.Equal("ftune: 'http://127.0.0.1:8480' has no API path: the platform's API root ends in /v1 (try http://127.0.0.1:8480/v1)." + Environment.NewLine, noApiPath.Error);

        var malformed = WriteFile(["{\"name\": "]);
        var badJson = await InvokeAsync("evals", "create", malformed, "--base-url", "http://127.0.0.1:8480/v1", "--api-key", "sk-x");
        Assert.Equal(2, badJson.ExitCode);
        Assert.Matches(@"^ftune: definition: ftune-\w+\.jsonl is not valid JSON at line \d+, column \d+\.\r?\n$", badJson.Error);

        // A port nobody listens on: the SDK's calls (upload, chat, models) and ours (report, jobs) say the same line.
        var nobody = $"http://127.0.0.1:{FineTunePlatform.Testing.LoopbackPorts.Free()}/v1";
        var upload = WriteFile([Example("hi", "hello")]);
        foreach (var command in new string[][] { ["models", "list"], ["chat", "local-nano", "hi"], ["files", "upload", upload], ["files", "report", "file-x"], ["jobs", "list"] })
        {
            var result = await InvokeAsync([.. command, "--base-url", nobody, "--api-key", "sk-x"]);
            Assert.True(result.ExitCode == 1, $"{string.Join(' ', command)}: exit {result.ExitCode}: {result.Error}");
            Assert.Matches($@"^ftune: cannot reach the platform at {Regex.Escape(nobody)}: [^\n]+; is \./run\.sh running\? \(\./run\.sh status\)\r?\n$", result.Error);
        }
    }

    private static async Task<(int ExitCode, string Output, string Error)> InvokeAsync(params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        var exitCode = await Ftune.InvokeAsync(args, output, error);
        return (exitCode, output.ToString(), error.ToString());
    }

    [Fact]
    public async Task Chats_stored_from_the_command_line_are_listed_and_exported_as_a_training_file()
    {
        var (_, key) = await Platform.Admin.CreateProjectAsync("member");
        for (var i = 0; i < 10; i++)
        {
            var chat = await RunAsync(key, "chat", TrainingPlatform.UpstreamModel, "refund", "ticket", $"{i}", "--store", "--metadata", "source=cli", "--metadata", $"n={i}");
            Assert.True(chat.ExitCode == 0, chat.Error);
            Assert.Equal($"{i} ticket refund" + Environment.NewLine, chat.Output);
        }

        // Stored just after each answer (off the request path): wait until all ten are listed.
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        (int ExitCode, string Output, string Error) list;
        do
        {
            list = await RunAsync(key, "completions", "list", "--metadata", "source=cli");
        }
        while (list.Output.Split('\n', StringSplitOptions.RemoveEmptyEntries).Length < 11 && DateTime.UtcNow < deadline);

        Assert.Equal(0, list.ExitCode);
        var lines = list.Output.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Matches(@"^ID +MODEL +CREATED +METADATA +ANSWER", lines[0]);
        Assert.Equal(11, lines.Length);
        // Newest first by `created`, which has seconds: chats answered in the same second may list in either order
        // (within a second the store breaks ties by insert sequence, and EF inserts a batch in key order), so the
        // newest, #9, is among the rows of the first row's minute (what the table shows), and every row matches the shape.
        Assert.All(lines.Skip(1), line => Assert.Matches(@"^chatcmpl-\S+ +echo-1 +\S+ +\S*source=cli\S* +\d ticket refund", line));
        static string Created(string line) => Regex.Split(line, @"\s{2,}")[2];
        Assert.Contains(lines.Skip(1).TakeWhile(line => Created(line) == Created(lines[1])), line => line.Contains(" 9 ticket refund", StringComparison.Ordinal));
        Assert.Single((await RunAsync(key, "completions", "list", "--metadata", "n=3")).Output.Split('\n', StringSplitOptions.RemoveEmptyEntries).Skip(1));

        var export = await RunAsync(key, "completions", "export", "--metadata", "source=cli", "--filename", "cli-traffic.jsonl");
        Assert.True(export.ExitCode == 0, export.Output + export.Error);
        Assert.Matches(@"^file-\S+  cli-traffic\.jsonl  \d+ bytes  processed", export.Output);

        var nothing = await RunAsync(key, "completions", "export", "--metadata", "source=nobody");
        Assert.Equal(1, nothing.ExitCode);
        Assert.StartsWith("ftune: 400: ", nothing.Error, StringComparison.Ordinal);
        Assert.Equal(2, (await RunAsync(key, "chat", TrainingPlatform.UpstreamModel, "hi", "--store", "--metadata", "novalue")).ExitCode);
    }

    private async Task<(int ExitCode, string Output, string Error)> RunAsync(string key, params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        var exitCode = await Ftune.InvokeAsync([.. args, "--base-url", new Uri(Platform.Gateway.BaseAddress, "v1").ToString(), "--api-key", key], output, error);
        return (exitCode, output.ToString(), error.ToString());
    }

    private static string Example(string user, string assistant) =>
        JsonSerializer.Serialize(new { messages = new object[] { new { role = "user", content = user }, new { role = "assistant", content = assistant } } });

    private static string WriteFile(IEnumerable<string> lines)
    {
        var path = Path.Combine(Path.GetTempPath(), $"ftune-{Guid.NewGuid():N}.jsonl");
        File.WriteAllLines(path, lines);
        return path;
    }
}
