using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace FineTunePlatform.Testing;

/// <summary>
/// A second, minimal OpenAI-compatible server on a real socket, standing in for an upstream provider (the issue's
/// "second in-process OpenAI-compatible server"). It answers with the last user message reversed word by word, as
/// one completion or as server-sent chunks (one per word), with usage when asked, and records what it received.
/// </summary>
public sealed class EchoCompletionsServer : IAsyncDisposable
{
    public const string ApiKey = "sk-upstream-test-key";

    private readonly WebApplication _app;

    private EchoCompletionsServer(WebApplication app, Uri baseUrl)
    {
        _app = app;
        BaseUrl = baseUrl;
    }

    public Uri BaseUrl { get; }

    public List<JsonObject> Received { get; } = [];

    public static async Task<EchoCompletionsServer> StartAsync()
    {
        var port = LoopbackPorts.Free();

        // An empty content root: the test's output folder holds the gateway's appsettings.json, whose Kestrel
        // endpoints this server must not pick up.
        var contentRoot = Directory.CreateTempSubdirectory("echo-upstream-").FullName;
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { ContentRootPath = contentRoot });
        builder.Logging.ClearProviders();
        builder.WebHost.UseUrls($"http://127.0.0.1:{port}");
        var app = builder.Build();
        var server = new EchoCompletionsServer(app, new Uri($"http://127.0.0.1:{port}/v1"));
        app.MapPost("/v1/chat/completions", server.CompleteAsync);
        await app.StartAsync();
        return server;
    }

    /// <summary>Gateway settings that route `model` to this server (as an operator configures an upstream provider).</summary>
    public void RouteModel(IDictionary<string, string?> gatewaySettings, string model)
    {
        gatewaySettings["Gateway:Upstreams:echo:BaseUrl"] = BaseUrl.ToString();
        gatewaySettings["Gateway:Upstreams:echo:ApiKey"] = ApiKey;
        gatewaySettings["Gateway:Upstreams:echo:Models:0"] = model;
    }

    public static string Answer(string prompt) => string.Join(' ', prompt.Split(' ').Reverse());

    private async Task CompleteAsync(HttpContext context)
    {
        if (context.Request.Headers.Authorization != $"Bearer {ApiKey}")
        {
            context.Response.StatusCode = 401;
            return;
        }

        var request = (await JsonNode.ParseAsync(context.Request.Body))!.AsObject();
        lock (Received)
        {
            Received.Add(request);
        }

        var model = request["model"]!.GetValue<string>();
        var prompt = request["messages"]!.AsArray().Last()!["content"]!.GetValue<string>();
        var words = Answer(prompt).Split(' ');
        var usage = new JsonObject { ["prompt_tokens"] = prompt.Split(' ').Length, ["completion_tokens"] = words.Length, ["total_tokens"] = prompt.Split(' ').Length + words.Length };
        var created = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        if (request["stream"]?.GetValueKind() != JsonValueKind.True)
        {
            await context.Response.WriteAsJsonAsync(new JsonObject
            {
                ["id"] = "chatcmpl-echo",
                ["object"] = "chat.completion",
                ["created"] = created,
                ["model"] = model,
                ["choices"] = new JsonArray(new JsonObject
                {
                    ["index"] = 0,
                    ["message"] = new JsonObject { ["role"] = "assistant", ["content"] = Answer(prompt) },
                    ["finish_reason"] = "stop",
                }),
                ["usage"] = usage,
            });
            return;
        }

        context.Response.ContentType = "text/event-stream";
        async Task SendAsync(JsonObject chunk)
        {
            await context.Response.WriteAsync($"data: {chunk.ToJsonString()}\n\n");
            await context.Response.Body.FlushAsync();
        }

        JsonObject Chunk(JsonArray choices) => new() { ["id"] = "chatcmpl-echo", ["object"] = "chat.completion.chunk", ["created"] = created, ["model"] = model, ["choices"] = choices };
        for (var i = 0; i < words.Length; i++)
        {
            var delta = new JsonObject { ["content"] = (i == 0 ? "" : " ") + words[i] };
            if (i == 0)
            {
                delta["role"] = "assistant";
            }

            await SendAsync(Chunk(new JsonArray(new JsonObject { ["index"] = 0, ["delta"] = delta, ["finish_reason"] = null })));
        }

        await SendAsync(Chunk(new JsonArray(new JsonObject { ["index"] = 0, ["delta"] = new JsonObject(), ["finish_reason"] = "stop" })));
        if (request["stream_options"]?["include_usage"]?.GetValueKind() == JsonValueKind.True)
        {
            var last = Chunk([]);
            last["usage"] = usage;
            await SendAsync(last);
        }

        await context.Response.WriteAsync("data: [DONE]\n\n");
    }

    public async ValueTask DisposeAsync() => await _app.DisposeAsync();
}
