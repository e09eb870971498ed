using System.Text.Json;

namespace FineTunePlatform.Cli.Tests;

/// <summary>
/// The commands that need no platform, run as a user runs them: no --base-url, no key, and FINETUNE_BASE_URL pointed at
/// a port nobody listens on, so that any call to a platform would fail the test.
/// </summary>
public sealed class OfflineCommandTests : IDisposable
{
    private readonly string? _baseUrl = Environment.GetEnvironmentVariable("FINETUNE_BASE_URL");
    private readonly List<string> _files = [];

    public OfflineCommandTests() => Environment.SetEnvironmentVariable("FINETUNE_BASE_URL", "http://127.0.0.1:9/v1");

    public void Dispose()
    {
        Environment.SetEnvironmentVariable("FINETUNE_BASE_URL", _baseUrl);
        _files.ForEach(File.Delete);
    }

    [Fact]
    public async Task Checking_a_good_file_reports_its_tokens_epochs_and_fit_and_exits_0()
    {
        var path = Write(Enumerable.Range(0, 12).Select(i => Example($"ticket {i}: refund?", "billing")));

        var (exitCode, output, error) = await FtuneAsync("files", "check", path);

        Assert.True(exitCode == 0, error);
        var lines = output.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Matches(@"^processed: 12 chat examples, \d+ billable tokens per epoch, 8 epochs recommended\r?$", lines[0]);
        Assert.Matches(@"^  local-nano: \d+ tokens per epoch in its 512-token context\r?$", lines[1]);
        Assert.Matches(@"^  local-small: \d+ tokens per epoch in its 1024-token context\r?$", lines[2]);
        Assert.Equal(3, lines.Length);
        Assert.Equal("", error);
    }

    [Fact]
    public async Task Checking_a_bad_file_names_each_line_at_fault_and_exits_1()
    {
        var path = Write([
            .. Enumerable.Range(0, 10).Select(i => Example($"ticket {i}", "billing")),
            """{"messages": [{"role": "user", "content": "no answer"}]}""",
            "not json",
            """{"messages": [{"role": "robot", "content": "beep"}, {"role": "assistant", "content": "ok"}]}""",
        ]);

        var (exitCode, output, error) = await FtuneAsync("files", "check", path);

        Assert.Equal(1, exitCode);
        Assert.StartsWith("error: 10 chat examples, ", output, StringComparison.Ordinal);
        Assert.Matches(@"\n  line 11 messages: The example has no assistant message to learn from\. \[example_missing_assistant_message\]\r?\n", output);
        Assert.Matches(@"\n  line 12: The line is not valid JSON: [^\n]+\[invalid_json\]\r?\n", output);
        Assert.Matches(@"\n  line 13 messages\[0\]\.role: [^\n]+\[unrecognized_role\]\r?\n", output);
        Assert.Equal("", error);
    }

    [Fact]
    public async Task Examples_longer_than_a_models_context_are_reported_for_that_model()
    {
        // Each example about 660 tokens: longer than local-nano's 512, within local-small's 1024.
        var longTicket = string.Join(' ', Enumerable.Range(0, 200).Select(i => $"word{i}"));
        var path = Write(Enumerable.Range(0, 10).Select(i => Example($"{longTicket} {i}", "billing")));

        var (exitCode, output, _) = await FtuneAsync("files", "check", path, "--model", "local-small", "--json");

        Assert.Equal(0, exitCode);
        var report = JsonDocument.Parse(output).RootElement;
        Assert.Equal("file.report", report.GetProperty("object").GetString());
        Assert.Equal("processed", report.GetProperty("status").GetString());
        var fit = Assert.Single(report.GetProperty("model_fits").EnumerateArray());
        Assert.Equal(("local-small", 1024, 0L), (fit.GetProperty("model").GetString(), fit.GetProperty("context_tokens").GetInt32(), fit.GetProperty("examples_truncated").GetInt64()));

        var nano = await FtuneAsync("files", "check", path, "--model", "ft:local-nano:proj_x:tickets:ftjob-1");
        Assert.Matches(@"\n  local-nano: \d+ tokens per epoch in its 512-token context; 10 of 10 examples are longer than local-nano's context of 512 tokens; their beginning is cut in training\.", nano.Output);
        Assert.DoesNotContain("local-small", nano.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Checking_with_json_prints_the_report_with_every_error_as_the_platform_serves_it()
    {
        var path = Write(["not json", Example("hi", "hello")]);

        var (exitCode, output, _) = await FtuneAsync("files", "check", path, "--json");

        Assert.Equal(1, exitCode);
        Assert.Single(output.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        var report = JsonDocument.Parse(output).RootElement;
        Assert.Equal("error", report.GetProperty("status").GetString());
        Assert.Equal(1, report.GetProperty("error_counts").GetProperty("invalid_json").GetInt64());
        Assert.Equal(1, report.GetProperty("error_counts").GetProperty("too_few_examples").GetInt64());
        var invalid = report.GetProperty("errors").EnumerateArray().Single(error => error.GetProperty("category").GetString() == "invalid_json");
        Assert.Equal(1, invalid.GetProperty("line").GetInt64());
        Assert.True(report.GetProperty("statistics").GetProperty("total_tokens").GetInt64() > 0);
    }

    [Fact]
    public async Task Checking_a_missing_file_is_a_usage_mistake()
    {
        var (exitCode, output, error) = await FtuneAsync("files", "check", "/nonexistent/tickets.jsonl");
        Assert.Equal(2, exitCode);
        Assert.Equal("", output);
        Assert.Equal("ftune: no such file: /nonexistent/tickets.jsonl" + Environment.NewLine, error);
    }

    [Fact]
    public async Task Tab_completion_prints_a_bash_script_and_the_suggest_directive_answers_it()
    {
        var script = await FtuneAsync("tab-completion", "bash");
        Assert.Equal(0, script.ExitCode);
        Assert.Contains("\"[suggest:${COMP_POINT}]\" \"${COMP_LINE}\"", script.Output, StringComparison.Ordinal);
        Assert.Contains("complete -o default -F _ftune_complete ftune", script.Output, StringComparison.Ordinal);

        // What bash asks for `ftune jobs wa<TAB>` and `ftune files check --m<TAB>`.
        Assert.Equal("watch", (await FtuneAsync("[suggest:13]", "ftune jobs wa")).Output.Trim());
        Assert.Equal("--model", (await FtuneAsync("[suggest:21]", "ftune files check --m")).Output.Trim());
        Assert.Equal(2, (await FtuneAsync("tab-completion", "fish")).ExitCode);
    }

    private static async Task<(int ExitCode, string Output, string Error)> FtuneAsync(params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        var exitCode = await Ftune.InvokeAsync(args, output, error);
        return (exitCode, output.ToString(), error.ToString());
    }

    private string Write(IEnumerable<string> lines)
    {
        var path = Path.Combine(Path.GetTempPath(), $"ftune-check-{Guid.NewGuid():N}.jsonl");
        File.WriteAllLines(path, lines);
        _files.Add(path);
        return path;
    }

    private static string Example(string user, string assistant) =>
        JsonSerializer.Serialize(new { messages = new object[] { new { role = "user", content = user }, new { role = "assistant", content = assistant } } });
}
