using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using FineTunePlatform.Datasets.Validation;

// Validation + token counting throughput on a synthetic chat JSONL (default 200 MB), with the tokenizer alone on one
// thread as the reference, and peak memory. Usage: dotnet run -c Release --project bench/FineTunePlatform.Datasets.Bench [megabytes]
var megabytes = args.Length > 0 ? int.Parse(args[0], CultureInfo.InvariantCulture) : 200;
var path = Path.Combine(Path.GetTempPath(), $"ftp-bench-v2-{megabytes}mb.jsonl");
if (!File.Exists(path) || new FileInfo(path).Length < megabytes * 1_000_000L)
{
    Console.WriteLine($"writing {megabytes} MB of chat examples to {path}");
    WriteDataset(path, megabytes * 1_000_000L);
}

var bytes = new FileInfo(path).Length;
Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"dataset: {bytes / 1e6:F0} MB, cores: {Environment.ProcessorCount}"));

// Reference: the tokenizer alone, one thread, over the first 20 MB of message text.
var sample = ReadContents(path, 20_000_000);
var tokens = TokenCounter.Shared;
tokens.Count("warm up");
var clock = Stopwatch.StartNew();
long sampleTokens = 0;
long sampleBytes = 0;
foreach (var text in sample)
{
    sampleTokens += tokens.Count(text);
    sampleBytes += Encoding.UTF8.GetByteCount(text);
}

Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
    $"tokenizer alone (1 thread): {sampleBytes / 1e6 / clock.Elapsed.TotalSeconds:F1} MB/s of text, {sampleTokens / clock.Elapsed.TotalSeconds / 1e6:F2} M tokens/s"));

// The built-in presets' BPE (the report's per-model fits render every valid example with it), one thread, same text.
var builtIn = FineTunePlatform.LocalModels.ChatTokenizer.BuiltIn;
clock.Restart();
long bpeTokens = 0;
foreach (var text in sample)
{
    bpeTokens += builtIn.Encode(text).Length;
}

Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
    $"built-in BPE alone (1 thread): {sampleBytes / 1e6 / clock.Elapsed.TotalSeconds:F1} MB/s of text, {bpeTokens / clock.Elapsed.TotalSeconds / 1e6:F2} M tokens/s"));

GC.Collect();
var before = Process.GetCurrentProcess().WorkingSet64;
clock.Restart();
var validator = new DatasetValidator(new ValidationOptions(), "gpt-4o-mini-2024-07-18", tokens);
DatasetReport report;
await using (var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20, useAsync: true))
{
    report = await validator.ValidateAsync(stream, CancellationToken.None);
}

var seconds = clock.Elapsed.TotalSeconds;
using var process = Process.GetCurrentProcess();
Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
    $"validation + token counting: {bytes / 1e6 / seconds:F1} MB/s, {report.ExampleCount / seconds:F0} examples/s ({report.ExampleCount} examples, {report.TotalTokens} tokens, {report.ErrorCount} errors) in {seconds:F1} s"));
Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
    $"memory: working set before {before / 1e6:F0} MB, peak {process.PeakWorkingSet64 / 1e6:F0} MB (target: >= 12 MB/s, peak < 300 MB)"));

static void WriteDataset(string path, long targetBytes)
{
    var random = new Random(42);
    string[] topics = ["invoice", "refund", "password", "delivery", "upgrade", "cancellation", "login", "receipt"];
    string[] labels = ["billing", "account", "shipping", "technical"];
    using var writer = new StreamWriter(path, false, new UTF8Encoding(false), 1 << 20);
    long written = 0;
    var index = 0;
    while (written < targetBytes)
    {
        // Mostly invented words, so the tokenizer's cache cannot make the text cheaper than real prose.
        var words = string.Join(' ', Enumerable.Range(0, 20 + random.Next(60)).Select(_ => random.Next(4) == 0
            ? topics[random.Next(topics.Length)]
            : new string(Enumerable.Range(0, 3 + random.Next(7)).Select(_ => (char)('a' + random.Next(26))).ToArray())));
        var line = JsonSerializer.Serialize(new
        {
            messages = new object[]
            {
                new { role = "system", content = "You route customer support tickets to one of four queues." },
                new { role = "user", content = $"Ticket #{index++}: Hello, I have a problem with my {words}. Can you help me today?" },
                new { role = "assistant", content = $"Queue: {labels[random.Next(labels.Length)]}. I have routed your ticket and a specialist will reply within a day." },
            },
        });
        writer.Write(line);
        writer.Write('\n');
        written += Encoding.UTF8.GetByteCount(line) + 1;
    }
}

static List<string> ReadContents(string path, long maxBytes)
{
    var texts = new List<string>();
    long read = 0;
    foreach (var line in File.ReadLines(path))
    {
        using var document = JsonDocument.Parse(line);
        foreach (var message in document.RootElement.GetProperty("messages").EnumerateArray())
        {
            texts.Add(message.GetProperty("content").GetString()!);
        }

        read += line.Length;
        if (read > maxBytes)
        {
            break;
        }
    }

    return texts;
}
