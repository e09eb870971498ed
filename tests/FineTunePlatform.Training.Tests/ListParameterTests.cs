using System.Net;
using System.Net.Http.Json;
using System.Text.Json;

namespace FineTunePlatform.Training.Tests;

/// <summary>One rule for every list's `limit`, through the gateway: a 400 naming it in OpenAI's words, never a 200 or a JSON-body message.</summary>
public sealed class ListParameterTests(FineTuningFixture fixture) : IClassFixture<FineTuningFixture>
{
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
