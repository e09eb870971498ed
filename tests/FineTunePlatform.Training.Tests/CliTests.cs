using System.Text.Json;
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
