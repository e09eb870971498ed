using System.ClientModel;
using System.ClientModel.Primitives;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using FineTunePlatform.Training.Tests;

// Eval run throughput: how fast a run grades items it is given (jsonl), and samples then grades through the gateway
// (an upstream provider's model, and the built-in local-nano). Services run in this process on real sockets against
// the private servers:
//   eng/servers.sh start /tmp/bench-servers && . /tmp/bench-servers/servers.env
//   dotnet run -c Release --project bench/FineTunePlatform.Evaluation.Bench [graded-items] [sampled-items]
var gradedItems = args.Length > 0 ? int.Parse(args[0], CultureInfo.InvariantCulture) : 10_000;
var sampledItems = args.Length > 1 ? int.Parse(args[1], CultureInfo.InvariantCulture) : 1_000;

TrainingPlatform.UseSourceContentRoots();

await using var platform = await TrainingPlatform.StartAsync("benchevals", workers: 0);
var (projectId, key) = await platform.Admin.CreateProjectAsync("member");
await platform.Admin.SetProjectLimitsAsync(projectId, requestsPerMinute: 100_000_000, tokensPerMinute: 1_000_000_000);
var evals = platform.Evals(key);
var eval = TrainingPlatform.JsonOf(await evals.CreateEvaluationAsync(TrainingPlatform.JsonBody(new
{
    name = "bench",
    data_source_config = new { type = "custom", item_schema = new { type = "object", properties = new { question = new { type = "string" }, expected = new { type = "string" } } }, include_sample_schema = true },
    testing_criteria = new object[]
    {
        new { type = "string_check", name = "exact", input = "{{sample.output_text}}", reference = "{{item.expected}}", operation = "eq" },
        new { type = "text_similarity", name = "bleu", input = "{{sample.output_text}}", reference = "{{item.expected}}", evaluation_metric = "bleu", pass_threshold = 0.5 },
    },
})));
var evalId = eval["id"]!.GetValue<string>();

Console.WriteLine($"eval run throughput, {Environment.ProcessorCount} cores (every service, Redis and PostgreSQL share them); 2 criteria (string_check, bleu)");
var words = "the quick brown fox jumps over the lazy dog while my parcel is still not here".Split(' ');
string Sentence(int i) => string.Join(' ', Enumerable.Range(0, 12).Select(j => words[(i + j) % words.Length]));

await MeasureAsync($"jsonl, {gradedItems:N0} items with samples (grading only)", gradedItems, new
{
    type = "jsonl",
    source = new { type = "file_content", content = Enumerable.Range(0, gradedItems).Select(i => new { item = new { question = Sentence(i), expected = Sentence(i + 1) }, sample = new { output_text = Sentence(i) } }).ToArray() },
});
await MeasureAsync($"completions, {sampledItems:N0} items on an upstream provider's model", sampledItems, Completions(TrainingPlatform.UpstreamModel, sampledItems, 16));
await MeasureAsync($"completions, {sampledItems / 4:N0} items on local-nano, up to 32 tokens each", sampledItems / 4, Completions("local-nano", sampledItems / 4, 32));
await MeasureDirectAsync("local-nano", sampledItems / 4, 32);
Console.WriteLine($"peak working set of the process (all services): {Process.GetCurrentProcess().PeakWorkingSet64 / (1024 * 1024)} MB");

// The same prompts as plain chat completions, as many at once as a run samples: what sampling costs without the run.
async Task MeasureDirectAsync(string model, int items, int maxTokens)
{
    var chat = platform.Chat(key, model);
    var clock = Stopwatch.StartNew();
    long tokens = 0;
    await Parallel.ForEachAsync(Enumerable.Range(0, items), new ParallelOptions { MaxDegreeOfParallelism = 8 }, async (i, ct) =>
    {
        OpenAI.Chat.ChatCompletion completion = await chat.CompleteChatAsync([new OpenAI.Chat.UserChatMessage(Sentence(i))],
            new OpenAI.Chat.ChatCompletionOptions { MaxOutputTokenCount = maxTokens, Seed = 1 }, ct);
        Interlocked.Add(ref tokens, completion.Usage.OutputTokenCount);
    });
    var elapsed = clock.Elapsed.TotalSeconds;
    Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
        $"the same {items:N0} prompts as chat completions on {model}, 8 at once: {elapsed:F1} s = {items / elapsed:N0} requests/s, {tokens / elapsed:N0} completion tokens/s"));
}

object Completions(string model, int items, int maxTokens) => new
{
    type = "completions",
    model,
    input_messages = new { type = "template", template = new[] { new { role = "user", content = "{{item.question}}" } } },
    sampling_params = new { max_completion_tokens = maxTokens, seed = 1 },
    source = new { type = "file_content", content = Enumerable.Range(0, items).Select(i => new { item = new { question = Sentence(i), expected = Sentence(i) } }).ToArray() },
};

async Task MeasureAsync(string label, int items, object dataSource)
{
    var clock = Stopwatch.StartNew();
    var run = TrainingPlatform.JsonOf(await evals.CreateEvaluationRunAsync(evalId, TrainingPlatform.JsonBody(new { data_source = dataSource })));
    var finished = await platform.WaitForEvalRunAsync(key, evalId, run["id"]!.GetValue<string>(), TimeSpan.FromMinutes(10));
    var elapsed = clock.Elapsed.TotalSeconds;
    var counts = finished["result_counts"]!;
    var usage = finished["per_model_usage"]!.AsArray().FirstOrDefault();
    var tokens = usage is null ? "" : $", {usage["completion_tokens"]!.GetValue<long>() / elapsed:N0} completion tokens/s";
    Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
        $"{label}: {finished["status"]} in {elapsed:F1} s = {items / elapsed:N0} items/s{tokens} (total {counts["total"]}, errored {counts["errored"]})"));
}
