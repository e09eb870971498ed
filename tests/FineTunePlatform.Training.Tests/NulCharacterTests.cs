using System.Net;
using System.Text.Json;

namespace FineTunePlatform.Training.Tests;

/// <summary>
/// PostgreSQL cannot take a NUL character in any text, even as a query parameter; a NUL in an id, a name or a page
/// cursor is the caller's mistake and must get a 4xx in OpenAI's shape from every service, never a 500.
/// </summary>
public sealed class NulCharacterTests(FineTuningFixture fixture) : IClassFixture<FineTuningFixture>
{
    [Theory]
    [InlineData("GET", "/v1/files?after=file-%00", null)]
    [InlineData("GET", "/v1/fine_tuning/jobs?after=ftjob-%00", null)]
    [InlineData("GET", "/v1/evals?after=eval_%00", null)]
    [InlineData("GET", "/v1/fine_tuning/jobs?metadata%5Bteam%5D=a%00", null)]
    [InlineData("POST", "/v1/fine_tuning/jobs", """{"model":"local\u0000nano","training_file":"file-x"}""")]
    [InlineData("POST", "/v1/fine_tuning/jobs", """{"model":"local-nano","training_file":"file-\u0000"}""")]
    [InlineData("POST", "/v1/chat/completions", """{"model":"ft:local-nano:\u0000","messages":[{"role":"user","content":"hi"}]}""")]
    public async Task A_nul_character_in_a_query_or_a_body_is_a_client_error_in_openai_shape(string method, string path, string? body)
    {
        using var http = fixture.Platform.Http(fixture.TeamA.Key);
        using var request = new HttpRequestMessage(new HttpMethod(method), new Uri(path, UriKind.Relative));
        if (body is not null)
        {
            request.Content = new StringContent(body, System.Text.Encoding.UTF8, "application/json");
        }

        using var response = await http.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode is HttpStatusCode.BadRequest or HttpStatusCode.NotFound, $"{(int)response.StatusCode}: {text}");
        Assert.True(text.StartsWith("{\"error\":", StringComparison.Ordinal), $"{(int)response.StatusCode}: '{text}'");
        Assert.True(JsonDocument.Parse(text).RootElement.GetProperty("error").TryGetProperty("message", out _), text);
    }

    /// <summary>Kestrel itself refuses a path that decodes to a NUL (400 with no body) before the application runs.</summary>
    [Theory]
    [InlineData("/v1/models/local%00nano")]
    [InlineData("/v1/files/file-%00")]
    [InlineData("/v1/fine_tuning/jobs/ftjob-%00/events")]
    [InlineData("/v1/evals/eval_%00")]
    public async Task A_nul_character_in_the_path_is_refused_before_the_application(string path)
    {
        using var http = fixture.Platform.Http(fixture.TeamA.Key);
        using var response = await http.GetAsync(new Uri(path, UriKind.Relative));
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
    }
}
