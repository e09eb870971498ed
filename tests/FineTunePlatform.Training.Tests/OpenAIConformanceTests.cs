using System.Net;
using System.Net.Http.Json;
using System.Text.Json;

namespace FineTunePlatform.Training.Tests;

/// <summary>
/// Where our answers must match OpenAI's OpenAPI document exactly (issue 16): one rule for every list's `limit`, and
/// optional fields the document does not allow as null left out instead of sent as null.
/// </summary>
public sealed class OpenAIConformanceTests(FineTuningFixture fixture) : IClassFixture<FineTuningFixture>
{
    [Fact]
    public async Task Optional_fields_that_may_not_be_null_are_left_out_when_there_is_no_value()
    {
        var (_, key) = fixture.TeamA;
        using var http = fixture.Platform.Http(key);
        var file = JsonDocument.Parse(await http.GetStringAsync($"/v1/files/{fixture.TeamAFile}")).RootElement;
        Assert.False(file.TryGetProperty("expires_at", out _), file.ToString());
        Assert.False(file.TryGetProperty("status_details", out _), file.ToString());

        var jobId = (await fixture.Platform.CreateJobAsync(key, fixture.TeamAFile, epochs: 1)).GetProperty("id").GetString()!;
        await fixture.Platform.WaitForJobAsync(key, jobId, TrainingPlatform.Finished);
        var checkpoint = JsonDocument.Parse(await http.GetStringAsync($"/v1/fine_tuning/jobs/{jobId}/checkpoints")).RootElement.GetProperty("data")[0];
        var metrics = checkpoint.GetProperty("metrics");
        Assert.True(metrics.GetProperty("train_loss").GetDouble() > 0);
        foreach (var unmeasured in new[] { "valid_loss", "valid_mean_token_accuracy", "full_valid_loss", "full_valid_mean_token_accuracy" })
        {
            Assert.False(metrics.TryGetProperty(unmeasured, out _), metrics.ToString());
        }

        // The official SDK still reads them.
        await foreach (var sdkCheckpoint in (await fixture.Platform.FineTuning(key).GetJobAsync(jobId)).GetCheckpointsAsync())
        {
            Assert.Null(sdkCheckpoint.Metrics.ValidLoss);
            Assert.NotNull(sdkCheckpoint.Metrics.TrainLoss);
        }
    }

    [Fact]
    public async Task Every_list_refuses_a_limit_that_is_not_a_positive_integer_naming_it()
    {
        var (_, key) = fixture.TeamA;
        var jobId = (await fixture.Platform.CreateJobAsync(key, fixture.TeamAFile, epochs: 1)).GetProperty("id").GetString()!;
        using var http = fixture.Platform.Http(key);
        var eval = await http.PostAsJsonAsync("/v1/evals", new
        {
            data_source_config = new { type = "custom", item_schema = new { type = "object", properties = new { ticket = new { type = "string" } } } },
            testing_criteria = new[] { new { type = "string_check", name = "routed", input = "{{item.ticket}}", reference = "billing", operation = "eq" } },
        });
        var evalId = JsonDocument.Parse(await eval.Content.ReadAsStringAsync()).RootElement.GetProperty("id").GetString()!;

        foreach (var list in new[] { "/v1/files", "/v1/fine_tuning/jobs", $"/v1/fine_tuning/jobs/{jobId}/events", $"/v1/fine_tuning/jobs/{jobId}/checkpoints", "/v1/evals", $"/v1/evals/{evalId}/runs" })
        {
            Assert.Equal(HttpStatusCode.OK, (await http.GetAsync($"{list}?limit=2")).StatusCode);
            foreach (var (limit, code) in new[] { ("-1", "integer_below_min_value"), ("0", "integer_below_min_value"), ("abc", "invalid_type"), ("1.5", "invalid_type") })
            {
                using var response = await http.GetAsync($"{list}?limit={limit}");
                var body = await response.Content.ReadAsStringAsync();
                Assert.True(response.StatusCode == HttpStatusCode.BadRequest, $"{list}?limit={limit}: {(int)response.StatusCode} {body}");
                var error = JsonDocument.Parse(body).RootElement.GetProperty("error");
                Assert.Equal("limit", error.GetProperty("param").GetString());
                Assert.Equal(code, error.GetProperty("code").GetString());
                Assert.DoesNotContain("JSON body", error.GetProperty("message").GetString(), StringComparison.Ordinal);
            }
        }
    }
}
