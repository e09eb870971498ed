using System.Text;
using System.Text.Json;

namespace FineTunePlatform.Datasets.Tests;

/// <summary>
/// A corpus of bad (and tricky but good) files, uploaded through the gateway, each with the exact category, line
/// and field path its report must name.
/// </summary>
public sealed class ValidationCorpusTests(FilesFixture fixture) : IClassFixture<FilesFixture>
{
    private static string Chat(params object[] messages) => JsonSerializer.Serialize(new { messages });

    private static byte[] Bytes(string text) => Encoding.UTF8.GetBytes(text);

    /// <summary>
    /// Each case by name; the content is built only when the case runs (xunit enumerates theory data at discovery,
    /// and a corpus holding a 10 MB line would be built and serialised there).
    /// </summary>
    public static TheoryData<string> BadFileNames() => new(BadFiles().Keys);

    private static Dictionary<string, (Func<byte[]> Content, string Category, long Line, string Path)> BadFiles()
    {
        static byte[] InvalidUtf8()
        {
            var content = TrainingData.Jsonl(12).ToList();
            var fifthLine = Encoding.UTF8.GetByteCount(string.Concat(Enumerable.Range(1, 4).Select(i => TrainingData.ChatLine(i) + "\n")));
            content.InsertRange(fifthLine + 40, [0xC3, 0x28]);
            return [.. content];
        }

        static string TenMegabyteLine() => "{\"messages\":[{\"role\":\"user\",\"content\":\"" + new string('a', 10 * 1024 * 1024) + "\"}]}";
        static string OverTokenLimit() => Chat(new { role = "user", content = string.Concat(Enumerable.Repeat("tokens galore ", 40_000)) }, new { role = "assistant", content = "ok" });

        return new()
        {
            ["truncated JSON"] = (() => TrainingData.Jsonl(12, new Dictionary<int, string> { [3] = "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}" }), "invalid_json", 3, "$"),
            ["byte order mark"] = (() => [.. new byte[] { 0xEF, 0xBB, 0xBF }, .. TrainingData.Jsonl(12)], "byte_order_mark", 1, "$"),
            ["invalid UTF-8"] = (() => InvalidUtf8(), "invalid_utf8", 5, "$"),
            ["a 10 MB line"] = (() => TrainingData.Jsonl(12, new Dictionary<int, string> { [2] = TenMegabyteLine() }), "line_too_long", 2, "$"),
            ["a binary file"] = (() => [0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 0x0D, (byte)'I', (byte)'H', (byte)'D', (byte)'R'], "invalid_utf8", 1, "$"),
            ["an empty file"] = (() => [], "empty_file", 0, "$"),
            ["9 examples"] = (() => TrainingData.Jsonl(9), "too_few_examples", 0, "$"),
            ["DPO with a missing side"] = (() => TrainingData.Jsonl(12, new Dictionary<int, string> { [4] = JsonSerializer.Serialize(new { input = new { messages = new[] { new { role = "user", content = "hi" } } }, preferred_output = new[] { new { role = "assistant", content = "Hello!" } } }) }, line: TrainingData.PreferenceLine), "missing_non_preferred_output", 4, "non_preferred_output"),
            ["not an object"] = (() => TrainingData.Jsonl(12, new Dictionary<int, string> { [2] = "[1, 2]" }), "data_type", 2, "$"),
            ["messages not a list"] = (() => TrainingData.Jsonl(12, new Dictionary<int, string> { [3] = "{\"messages\": \"hello\"}" }), "missing_messages_list", 3, "messages"),
            ["no messages at all"] = (() => TrainingData.Jsonl(12, new Dictionary<int, string> { [7] = "{\"text\": \"hello\"}" }), "missing_messages_list", 7, "messages"),
            ["message without role"] = (() => TrainingData.Jsonl(12, new Dictionary<int, string> { [4] = Chat(new { role = "user", content = "hi" }, new { content = "who am I" }) }), "message_missing_key", 4, "messages[1].role"),
            ["unrecognised message key"] = (() => TrainingData.Jsonl(12, new Dictionary<int, string> { [5] = Chat(new { role = "user", content = "hi", mood = "sad" }, new { role = "assistant", content = "ok" }) }), "message_unrecognized_key", 5, "messages[0].mood"),
            ["unrecognised role"] = (() => TrainingData.Jsonl(12, new Dictionary<int, string> { [6] = Chat(new { role = "user", content = "hi" }, new { role = "bot", content = "ok" }) }), "unrecognized_role", 6, "messages[1].role"),
            ["missing content"] = (() => TrainingData.Jsonl(12, new Dictionary<int, string> { [7] = Chat(new { role = "user" }, new { role = "assistant", content = "ok" }) }), "missing_content", 7, "messages[0].content"),
            ["no assistant message"] = (() => TrainingData.Jsonl(12, new Dictionary<int, string> { [8] = Chat(new { role = "system", content = "be brief" }, new { role = "user", content = "hi" }) }), "example_missing_assistant_message", 8, "messages"),
            ["an empty line"] = (() => TrainingData.Jsonl(12, new Dictionary<int, string> { [4] = "" }), "empty_line", 4, "$"),
            ["mixed formats"] = (() => TrainingData.Jsonl(12, new Dictionary<int, string> { [6] = TrainingData.PreferenceLine(6) }), "mixed_formats", 6, "$"),
            ["weight not 0 or 1"] = (() => TrainingData.Jsonl(12, new Dictionary<int, string> { [9] = Chat(new { role = "user", content = "hi" }, new { role = "assistant", content = "ok", weight = 2 }) }), "invalid_weight", 9, "messages[1].weight"),
            ["an example over the token limit"] = (() => TrainingData.Jsonl(12, new Dictionary<int, string> { [2] = OverTokenLimit() }), "example_too_long", 2, "$"),
        };
    }

    [Theory]
    [MemberData(nameof(BadFileNames))]
    public async Task Each_bad_file_ends_in_error_naming_the_category_line_and_path(string name)
    {
        var (content, category, line, path) = BadFiles()[name];
        var (file, report) = await UploadAsync(name, content());

        Assert.Equal("error", file.GetProperty("status").GetString());
        Assert.Contains(category, file.GetProperty("status_details").GetString(), StringComparison.Ordinal);
        Assert.True(report.GetProperty("error_counts").TryGetProperty(category, out var count), $"{name}: {report}");
        Assert.True(count.GetInt64() >= 1);
        Assert.Contains(report.GetProperty("errors").EnumerateArray(), error =>
            error.GetProperty("category").GetString() == category
            && error.GetProperty("line").GetInt64() == line
            && error.GetProperty("path").GetString() == path);
    }

    [Fact]
    public async Task Crlf_line_endings_and_a_trailing_newline_are_fine()
    {
        var (file, report) = await UploadAsync("crlf", TrainingData.Jsonl(12, newline: "\r\n"));

        Assert.Equal("processed", file.GetProperty("status").GetString());
        Assert.Equal(12, report.GetProperty("example_count").GetInt64());
        Assert.Empty(report.GetProperty("errors").EnumerateArray());
    }

    [Fact]
    public async Task Reports_count_every_error_but_list_a_capped_number()
    {
        var broken = Enumerable.Range(1, 60).ToDictionary(i => i, _ => "{not json");

        var (_, report) = await UploadAsync("many errors", TrainingData.Jsonl(100, broken));

        Assert.Equal(60, report.GetProperty("error_counts").GetProperty("invalid_json").GetInt64());
        var listed = report.GetProperty("errors").EnumerateArray().Where(error => error.GetProperty("category").GetString() == "invalid_json").ToList();
        Assert.Equal(20, listed.Count);
        Assert.Equal(Enumerable.Range(1, 20).Select(i => (long)i), listed.Select(error => error.GetProperty("line").GetInt64()));
    }

    [Fact]
    public async Task A_valid_chat_file_reports_tokens_statistics_and_the_epoch_heuristic()
    {
        var (file, report) = await UploadAsync("valid", TrainingData.Jsonl(20));

        Assert.Equal("processed", file.GetProperty("status").GetString());
        Assert.Equal("chat", report.GetProperty("format").GetString());
        Assert.Equal(20, report.GetProperty("example_count").GetInt64());
        // OpenAI's heuristic: 20 examples x 3 epochs < 100, so 100 / 20 = 5 epochs.
        Assert.Equal(5, report.GetProperty("recommended_epochs").GetInt32());
        var statistics = report.GetProperty("statistics");
        Assert.Equal(3, statistics.GetProperty("messages_per_example").GetProperty("median").GetDouble());
        Assert.Equal(0, statistics.GetProperty("examples_missing_system").GetInt64());
        var perExample = statistics.GetProperty("total_tokens_per_example");
        Assert.InRange(perExample.GetProperty("min").GetDouble(), 20, 60);
        Assert.Equal(report.GetProperty("billable_tokens_per_epoch").GetInt64() * 5, report.GetProperty("estimated_billable_tokens").GetInt64());
        Assert.Equal(statistics.GetProperty("total_tokens").GetInt64(), report.GetProperty("billable_tokens_per_epoch").GetInt64());
    }

    private async Task<(JsonElement File, JsonElement Report)> UploadAsync(string name, byte[] content)
    {
        using var http = fixture.HttpClient(fixture.TeamA.Key);
        using var form = new MultipartFormDataContent
        {
            { new ByteArrayContent(content), "file", name.Replace(' ', '-') + ".jsonl" },
            { new StringContent("fine-tune"), "purpose" },
        };
        var response = await http.PostAsync(new Uri("/v1/files", UriKind.Relative), form);
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, $"{name}: {response.StatusCode} {body}");
        var file = JsonDocument.Parse(body).RootElement;
        var report = JsonDocument.Parse(await http.GetStringAsync(new Uri($"/v1/files/{file.GetProperty("id").GetString()}/report", UriKind.Relative))).RootElement;
        return (file, report);
    }
}
