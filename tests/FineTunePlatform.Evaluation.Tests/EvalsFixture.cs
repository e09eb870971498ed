using System.ClientModel;
using System.ClientModel.Primitives;
using System.Text.Json;
using System.Text.Json.Nodes;
using FineTunePlatform.Training.Tests;
using OpenAI.Evals;

namespace FineTunePlatform.Evaluation.Tests;

/// <summary>The whole platform (one trainer worker) shared by the eval tests, and the calls they make through the SDK.</summary>
public sealed class EvalsFixture : IAsyncLifetime
{
    public TrainingPlatform Platform { get; private set; } = null!;

    public async Task InitializeAsync() => Platform = await TrainingPlatform.StartAsync("evals", workers: 1);

    public async Task DisposeAsync() => await Platform.DisposeAsync();

    public EvaluationClient Evals(string key) => Platform.Evals(key);

    public async Task<JsonObject> CreateEvalAsync(string key, object body) =>
        TrainingPlatform.JsonOf(await Evals(key).CreateEvaluationAsync(TrainingPlatform.JsonBody(body)));

    public async Task<JsonObject> CreateRunAsync(string key, string evalId, object body) =>
        TrainingPlatform.JsonOf(await Evals(key).CreateEvaluationRunAsync(evalId, TrainingPlatform.JsonBody(body)));

    public async Task<JsonObject> GetRunAsync(string key, string evalId, string runId) =>
        TrainingPlatform.JsonOf(await Evals(key).GetEvaluationRunAsync(evalId, runId, new RequestOptions()));

    /// <summary>Waits for a run to finish; `timeout` is a bound for a broken run, not a speed target (runs share two
    /// cores with the rest of the suite).</summary>
    public Task<JsonObject> WaitForRunAsync(string key, string evalId, string runId, TimeSpan? timeout = null) => Platform.WaitForEvalRunAsync(key, evalId, runId, timeout);

    /// <summary>Every output item of a run, in data-source order, paging through the SDK.</summary>
    public async Task<List<JsonObject>> OutputItemsAsync(string key, string evalId, string runId, string? status = null)
    {
        var items = new List<JsonObject>();
        string? after = null;
        while (true)
        {
            var page = TrainingPlatform.JsonOf(await Evals(key).GetEvaluationRunOutputItemsAsync(evalId, runId, 2, "asc", after, status, new RequestOptions()));
            items.AddRange(page["data"]!.AsArray().Select(item => item!.AsObject()));
            if (!page["has_more"]!.GetValue<bool>())
            {
                return items;
            }

            after = page["last_id"]!.GetValue<string>();
        }
    }

    /// <summary>
    /// Each output item's status and its sample's error, one line per item: the message of an assertion on a run's
    /// counts, so a run whose items errored says why (a count alone told us nothing when one failed in CI).
    /// </summary>
    public async Task<string> ItemStatusesAsync(string key, string evalId, string runId) =>
        string.Join("\n", (await OutputItemsAsync(key, evalId, runId)).Select(item =>
            $"{item["datasource_item_id"]}: {item["status"]} {item["sample"]?["error"]?["message"]}"));

    /// <summary>An eval over items {question, expected} with one exact-match criterion on the sample.</summary>
    public static object ExactMatchEval(string name = "exact") => new
    {
        name,
        data_source_config = new
        {
            type = "custom",
            item_schema = new
            {
                type = "object",
                properties = new { question = new { type = "string" }, expected = new { type = "string" } },
                required = new[] { "question", "expected" },
            },
            include_sample_schema = true,
        },
        testing_criteria = new object[]
        {
            new { type = "string_check", name = "exact", input = "{{sample.output_text}}", reference = "{{item.expected}}", operation = "eq" },
        },
    };

    public static JsonElement Json(string text) => JsonDocument.Parse(text).RootElement.Clone();
}

[CollectionDefinition(Name)]
public sealed class EvalsCollection : ICollectionFixture<EvalsFixture>
{
    public const string Name = "evals";
}
