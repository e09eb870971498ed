using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using FineTunePlatform.Gateway.Auth;
using FineTunePlatform.Gateway.Grpc;
using FineTunePlatform.Gateway.RateLimiting;
using FineTunePlatform.Testing;
using Microsoft.Extensions.Options;

namespace FineTunePlatform.Gateway.Tests;

/// <summary>
/// What the gateway refuses at its edge, each in OpenAI's error shape: requests that can never fit a rate limit,
/// uploads larger than the limit (on their Content-Length, unread), Kestrel's own limits, a key without `Bearer `,
/// an eval run naming a model the project cannot use, a grant to the platform team's project, too many streams.
/// </summary>
public sealed class EdgeRefusalsTests(GatewayFixture fixture) : IClassFixture<GatewayFixture>
{
    [Fact]
    public async Task A_request_larger_than_the_whole_token_bucket_is_a_400_not_a_429_that_can_never_succeed()
    {
        var (projectId, key) = await fixture.CreateProjectAsync("reader");
        await fixture.SetProjectLimitsAsync(projectId, requestsPerMinute: null, tokensPerMinute: 10_000);
        using var http = fixture.CreateClient(key);

        var huge = await http.PostAsJsonAsync("/v1/chat/completions", new { model = GatewayFixture.UpstreamModel, max_tokens = int.MaxValue, messages = new[] { new { role = "user", content = "hi" } } });
        var longPrompt = await http.PostAsJsonAsync("/v1/chat/completions", new { model = GatewayFixture.UpstreamModel, messages = new[] { new { role = "user", content = new string('a', 200_000) } } });
        var fits = await http.PostAsJsonAsync("/v1/chat/completions", new { model = GatewayFixture.UpstreamModel, max_tokens = 16, messages = new[] { new { role = "user", content = "hi" } } });

        foreach (var response in (HttpResponseMessage[])[huge, longPrompt])
        {
            var text = await response.Content.ReadAsStringAsync();
            Assert.True(response.StatusCode == HttpStatusCode.BadRequest, text);
            Assert.False(response.Headers.Contains("retry-after"), "no retry can succeed");
            var error = JsonDocument.Parse(text).RootElement.GetProperty("error");
            Assert.Equal("request_too_large", error.GetProperty("code").GetString());
            Assert.Contains("Limit 10000", error.GetProperty("message").GetString(), StringComparison.Ordinal);
        }

        // Nothing was charged for the refused requests: a small one still fits.
        Assert.Equal(HttpStatusCode.OK, fits.StatusCode);
    }

    [Theory]
    [InlineData("/v1/files")]
    [InlineData("/v1/uploads/upload_x/parts")]
    public async Task An_upload_declared_larger_than_the_limit_is_refused_before_its_body_is_read(string path)
    {
        var (_, key) = await fixture.CreateProjectAsync("member");
        // 3 GB declared, 64 KB sent: before the fix the gateway read on, waiting for the rest, and never answered.
        var answer = await RawHttp.SendAsync(fixture.Gateway.BaseAddress,
            $"POST {path} HTTP/1.1\r\nHost: gateway\r\nAuthorization: Bearer {key}\r\nContent-Type: multipart/form-data; boundary=b\r\nContent-Length: 3000000000",
            body: async stream =>
            {
                await stream.WriteAsync(new byte[64 * 1024]);
                await stream.FlushAsync();
            },
            timeout: TimeSpan.FromSeconds(15));

        Assert.True(answer.Status == 413, answer.Head + answer.Body);
        Assert.Contains("Connection: close", answer.Head, StringComparison.OrdinalIgnoreCase);
        Assert.Equal("payload_too_large", JsonDocument.Parse(answer.Body).RootElement.GetProperty("error").GetProperty("code").GetString());
    }

    [Fact]
    public async Task A_chunked_upload_with_no_length_is_read_only_up_to_the_limit()
    {
        await using var upstream = await EchoCompletionsServer.StartAsync();
        var platform = await PlatformTestEnvironment.CreateAsync("uploadcap");
        var settings = GatewayFixture.SettingsWithUpstream(platform.SettingsFor("gatewaydb"), upstream);
        settings["Datasets:Limits:MaxFileBytes"] = "1024";
        await using var gateway = new ServiceHost<PlatformInfoService>(settings);
        var (_, key) = await new GatewayAdmin(gateway, GatewayFixture.AdminKey).CreateProjectAsync("member");

        // A 64 MB part (one the gateway skips: no dataset service is needed to see it stop), in chunks and without a
        // Content-Length: the gateway must stop reading at the cap (1 KB of content plus 1 MB of framing) and answer.
        long sent = 0;
        var answer = await RawHttp.SendAsync(gateway.BaseAddress,
            $"POST /v1/files HTTP/1.1\r\nHost: gateway\r\nAuthorization: Bearer {key}\r\nContent-Type: multipart/form-data; boundary=b\r\nTransfer-Encoding: chunked",
            body: async stream =>
            {
                async Task ChunkAsync(byte[] data)
                {
                    await stream.WriteAsync(Encoding.ASCII.GetBytes($"{data.Length:x}\r\n"));
                    await stream.WriteAsync(data);
                    await stream.WriteAsync("\r\n"u8.ToArray());
                    sent += data.Length;
                }

                await ChunkAsync(Encoding.ASCII.GetBytes("--b\r\nContent-Disposition: form-data; name=\"notes\"\r\n\r\n"));
                var filler = new byte[64 * 1024];
                Array.Fill(filler, (byte)'a');
                for (var i = 0; i < 1024; i++)
                {
                    await ChunkAsync(filler);
                }

                await ChunkAsync(Encoding.ASCII.GetBytes("\r\n--b--\r\n"));
                await stream.WriteAsync("0\r\n\r\n"u8.ToArray());
            },
            timeout: TimeSpan.FromSeconds(30));

        Assert.True(answer.Status == 413, answer.Head + answer.Body);
        Assert.Equal("invalid_request_error", JsonDocument.Parse(answer.Body).RootElement.GetProperty("error").GetProperty("type").GetString());
        Assert.True(sent < 64L * 1024 * 1024, $"the client sent all {sent} bytes: the gateway read past its cap");
    }

    [Fact]
    public async Task Kestrels_own_refusals_answer_in_openais_shape()
    {
        var (_, key) = await fixture.CreateProjectAsync("reader");
        using var http = fixture.CreateClient(key);

        var longUrl = await http.GetAsync(new Uri("/v1/files/file-" + new string('x', 10 * 1024), UriKind.Relative));
        using var bigHeaders = new HttpRequestMessage(HttpMethod.Get, "/v1/models");
        for (var i = 0; i < 8; i++)
        {
            bigHeaders.Headers.Add($"x-filler-{i}", new string('h', 8 * 1024));
        }

        var largeHeaders = await http.SendAsync(bigHeaders);
        var nonAscii = await RawHttp.SendAsync(fixture.Gateway.BaseAddress, "", headBytesOverride:
            [.. "GET /v1/models HTTP/1.1\r\nHost: gateway\r\nConnection: close\r\nAuthorization: Bearer "u8, .. Encoding.UTF8.GetBytes("sk-ключ"), .. "\r\n\r\n"u8]);

        Assert.Equal(HttpStatusCode.RequestUriTooLong, longUrl.StatusCode);
        Assert.Equal(HttpStatusCode.RequestHeaderFieldsTooLarge, largeHeaders.StatusCode);
        Assert.True(nonAscii.Status == 400, nonAscii.Head + nonAscii.Body);
        foreach (var body in (string[])[await longUrl.Content.ReadAsStringAsync(), await largeHeaders.Content.ReadAsStringAsync(), nonAscii.Body])
        {
            var error = JsonDocument.Parse(body).RootElement.GetProperty("error");
            Assert.Equal("invalid_request_error", error.GetProperty("type").GetString());
            Assert.False(string.IsNullOrEmpty(error.GetProperty("message").GetString()));
        }
    }

    [Fact]
    public async Task A_key_without_the_bearer_scheme_is_401_like_openai()
    {
        var (_, key) = await fixture.CreateProjectAsync("reader");
        using var http = fixture.CreateClient(null);
        using var request = new HttpRequestMessage(HttpMethod.Get, "/v1/models");
        request.Headers.TryAddWithoutValidation("Authorization", key);

        var response = await http.SendAsync(request);

        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        Assert.Contains("Bearer", JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("error").GetProperty("message").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_eval_run_naming_another_projects_model_is_refused_at_create()
    {
        var (_, key) = await fixture.CreateProjectAsync("member");
        using var http = fixture.CreateClient(key);

        var response = await http.PostAsJsonAsync("/v1/evals/eval_x/runs", new
        {
            data_source = new
            {
                type = "completions",
                model = "ft:local-nano:proj_someoneelse:s:ftjob-x",
                source = new { type = "file_content", content = Array.Empty<object>() },
            },
        });

        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        var error = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("error");
        Assert.Equal("data_source.model", error.GetProperty("param").GetString());
        Assert.Equal("model_not_found", error.GetProperty("code").GetString());
    }

    [Fact]
    public async Task An_owner_cannot_grant_a_model_to_the_platform_teams_project()
    {
        var (_, key) = await fixture.CreateProjectAsync("owner");
        using var http = fixture.CreateClient(key);

        var response = await http.PostAsJsonAsync("/v1/fine_tuning/checkpoints/ft:local-nano:proj_x:s:ftjob-x/permissions", new { project_ids = new[] { Project.PlatformProjectId } });

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal("project_ids", JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("error").GetProperty("param").GetString());
    }

    [Fact]
    public void Event_streams_are_bounded_per_key()
    {
        var streams = new ConcurrentStreams(Options.Create(new RateLimitDefaults { ConcurrentStreamsPerKey = 20 }));
        var held = Enumerable.Range(0, 20).Select(_ => streams.TryAcquire("key_a")).ToList();

        Assert.All(held, Assert.NotNull);
        Assert.Null(streams.TryAcquire("key_a"));
        Assert.NotNull(streams.TryAcquire("key_b"));

        held[0]!.Dispose();
        held[0]!.Dispose();
        Assert.Equal(19, streams.OpenFor("key_a"));
        Assert.NotNull(streams.TryAcquire("key_a"));
        Assert.Null(streams.TryAcquire("key_a"));
        held.ForEach(lease => lease?.Dispose());
        Assert.Equal(1, streams.OpenFor("key_a"));
    }
}
