using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using FineTunePlatform.Training.Tests;

namespace FineTunePlatform.Evaluation.Tests;

/// <summary>
/// OpenAI's graders API on the graders evals use: a grader is tried on one sample and item and grades as the same
/// testing criterion grades an output item; it is refused with the same messages, naming grader.&lt;field&gt;.
/// </summary>
[Collection(EvalsCollection.Name)]
public sealed class GradersApiTests(EvalsFixture fixture)
{
    private TrainingPlatform Platform => fixture.Platform;

    [Fact]
    public async Task A_grader_run_on_a_sample_rewards_it_as_an_eval_would()
    {
        var (_, key) = await Platform.Admin.CreateProjectAsync("member");
        using var http = Platform.Http(key);
        var check = new { type = "string_check", name = "exact", input = "{{sample.output_text}}", reference = "{{item.expected}}", operation = "eq" };

        var pass = await RunAsync(http, new { grader = check, model_sample = "billing", item = new { expected = "billing" } });
        Assert.Equal(1.0, pass.GetProperty("reward").GetDouble());
        Assert.Equal("exact", pass.GetProperty("metadata").GetProperty("name").GetString());
        Assert.Equal("string_check", pass.GetProperty("metadata").GetProperty("type").GetString());
        Assert.False(pass.GetProperty("metadata").GetProperty("errors").GetProperty("model_grader_server_error").GetBoolean());
        Assert.Equal(0.0, (await RunAsync(http, new { grader = check, model_sample = "bug", item = new { expected = "billing" } })).GetProperty("reward").GetDouble());

        // sample.output_json when the sample is JSON, as in a run.
        var json = await RunAsync(http, new
        {
            grader = new { type = "string_check", name = "label", input = "{{sample.output_json.label}}", reference = "billing", operation = "eq" },
            model_sample = "{\"label\": \"billing\"}",
        });
        Assert.Equal(1.0, json.GetProperty("reward").GetDouble());

        // fuzzy_match's score is the reward (no pass_threshold here: the graders API answers the score).
        var fuzzy = await RunAsync(http, new
        {
            grader = new { type = "text_similarity", name = "close", input = "{{sample.output_text}}", reference = "billing", evaluation_metric = "fuzzy_match" },
            model_sample = "biling",
        });
        Assert.InRange(fuzzy.GetProperty("reward").GetDouble(), 0.8, 0.99);

        // A model grader asks its model as the caller's project and says which model and how many tokens.
        var judged = await RunAsync(http, new
        {
            grader = new { type = "score_model", name = "judge", model = "local-nano", input = new[] { new { role = "user", content = "Rate: {{sample.output_text}}" } }, range = new[] { 0, 10 } },
            model_sample = "billing",
        });
        Assert.Equal("local-nano", judged.GetProperty("metadata").GetProperty("sampled_model_name").GetString());
        Assert.True(judged.GetProperty("metadata").GetProperty("token_usage").GetInt64() > 0);
        Assert.True(judged.GetProperty("model_grader_token_usage_per_model").GetProperty("local-nano").GetProperty("total_tokens").GetInt64() > 0);
        Assert.InRange(judged.GetProperty("reward").GetDouble(), 0, 10);
    }

    [Fact]
    public async Task Validate_answers_the_grader_and_refuses_what_an_eval_refuses_naming_the_field()
    {
        var (_, key) = await Platform.Admin.CreateProjectAsync("reader");
        using var http = Platform.Http(key);
        var grader = new { type = "string_check", name = "exact", input = "{{sample.output_text}}", reference = "x", operation = "ilike" };
        using var valid = await http.PostAsJsonAsync("/v1/fine_tuning/alpha/graders/validate", new { grader });
        var body = await valid.Content.ReadAsStringAsync();
        Assert.True(valid.IsSuccessStatusCode, body);
        Assert.Equal("ilike", JsonDocument.Parse(body).RootElement.GetProperty("grader").GetProperty("operation").GetString());

        foreach (var (bad, param) in new (object Body, string Param)[]
        {
            (new { grader = grader with { operation = "contains" } }, "grader.operation"),
            (new { grader = new { type = "python", name = "p", source = "x" } }, "grader.type"),
            (new { grader = new { type = "multi", name = "m", graders = Array.Empty<object>(), calculate_output = "1" } }, "grader.type"),
            (new { grader = new { type = "string_check", name = "t", input = "{{secrets.key}}", reference = "x", operation = "eq" } }, "grader.input"),
            (new { other = 1 }, "grader"),
        })
        {
            using var refused = await http.PostAsJsonAsync("/v1/fine_tuning/alpha/graders/validate", bad);
            var error = JsonDocument.Parse(await refused.Content.ReadAsStringAsync()).RootElement.GetProperty("error");
            Assert.Equal(HttpStatusCode.BadRequest, refused.StatusCode);
            Assert.Equal(param, error.GetProperty("param").GetString());
        }

        // Running one may call a model: a reader may validate but not run.
        using var forbidden = await http.PostAsJsonAsync("/v1/fine_tuning/alpha/graders/run", new { grader, model_sample = "x" });
        Assert.Equal(HttpStatusCode.Forbidden, forbidden.StatusCode);
        using var member = Platform.Http((await Platform.Admin.CreateProjectAsync("member")).Key);
        using var noSample = await member.PostAsJsonAsync("/v1/fine_tuning/alpha/graders/run", new { grader });
        Assert.Equal(HttpStatusCode.BadRequest, noSample.StatusCode);
        Assert.Equal("model_sample", JsonDocument.Parse(await noSample.Content.ReadAsStringAsync()).RootElement.GetProperty("error").GetProperty("param").GetString());
    }

    private static async Task<JsonElement> RunAsync(HttpClient http, object request)
    {
        using var response = await http.PostAsJsonAsync("/v1/fine_tuning/alpha/graders/run", request);
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, body);
        return JsonDocument.Parse(body).RootElement.Clone();
    }
}
