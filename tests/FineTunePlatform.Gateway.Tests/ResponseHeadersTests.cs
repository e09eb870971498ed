using System.Net;
using System.Net.Http.Json;
using System.Text.RegularExpressions;

namespace FineTunePlatform.Gateway.Tests;

/// <summary>OpenAI's x-request-id and openai-processing-ms on every answer: success, refusal, unknown route, streaming.</summary>
public sealed partial class ResponseHeadersTests(GatewayFixture fixture) : IClassFixture<GatewayFixture>
{
    [Fact]
    public async Task Every_response_carries_a_request_id_and_its_processing_time()
    {
        var (_, key) = await fixture.CreateProjectAsync("member");
        using var http = fixture.CreateClient(key);
        using var anonymous = fixture.CreateClient(null);
        var chat = new { model = GatewayFixture.UpstreamModel, messages = new[] { new { role = "user", content = "hi" } } };
        var responses = new[]
        {
            await http.GetAsync("/v1/models"),
            await http.PostAsJsonAsync("/v1/chat/completions", chat),
            await http.PostAsJsonAsync("/v1/chat/completions", new { model = GatewayFixture.UpstreamModel, stream = true, messages = chat.messages }),
            await http.PostAsJsonAsync("/v1/chat/completions", new { model = "no-such-model", messages = chat.messages }),
            await anonymous.GetAsync("/v1/models"),
            await http.GetAsync("/v1/no-such-route"),
        };
        Assert.Equal(
            [HttpStatusCode.OK, HttpStatusCode.OK, HttpStatusCode.OK, HttpStatusCode.NotFound, HttpStatusCode.Unauthorized, HttpStatusCode.NotFound],
            responses.Select(response => response.StatusCode));
        var ids = new HashSet<string>();
        foreach (var response in responses)
        {
            var id = response.Headers.GetValues("x-request-id").Single();
            Assert.Matches(RequestId(), id);
            Assert.True(ids.Add(id), $"request id {id} was given twice");
            Assert.True(long.TryParse(response.Headers.GetValues("openai-processing-ms").Single(), out var milliseconds) && milliseconds >= 0);
            response.Dispose();
        }
    }

    [GeneratedRegex("^req_[0-9a-f]{32}$")]
    private static partial Regex RequestId();
}
