using System.ClientModel;
using System.ClientModel.Primitives;
using System.CommandLine;
using System.Net.Http.Headers;
using System.Text.Json;
using OpenAI;

namespace FineTunePlatform.Cli;

/// <summary>
/// Where the platform is and which key to use: `--base-url`/`--api-key`, else FINETUNE_BASE_URL/FINETUNE_API_KEY,
/// else OPENAI_BASE_URL/OPENAI_API_KEY (so a shell already set up for the OpenAI SDK works unchanged). A variable set
/// to nothing counts as unset: `export FINETUNE_API_KEY=$TEAM_KEY` with TEAM_KEY unset must say the key is missing,
/// not send an empty one and report the platform's "Incorrect API key".
/// </summary>
public sealed class ConnectionOptions
{
    public Option<string?> BaseUrl { get; } = new("--base-url")
    {
        Description = "The platform's API root, e.g. http://127.0.0.1:8480/v1 (default: $FINETUNE_BASE_URL, then $OPENAI_BASE_URL).",
        Recursive = true,
    };

    public Option<string?> ApiKey { get; } = new("--api-key")
    {
        Description = "A project API key (default: $FINETUNE_API_KEY, then $OPENAI_API_KEY).",
        Recursive = true,
    };

    public PlatformConnection Open(ParseResult parse)
    {
        var baseUrl = FirstSet(parse.GetValue(BaseUrl), "FINETUNE_BASE_URL", "OPENAI_BASE_URL")
            ?? throw new CliException("no platform address: pass --base-url or set FINETUNE_BASE_URL (./run.sh writes it to .run/platform.env, e.g. http://127.0.0.1:8480/v1).", 2);
        var apiKey = FirstSet(parse.GetValue(ApiKey), "FINETUNE_API_KEY", "OPENAI_API_KEY")
            ?? throw new CliException("no API key: pass --api-key or set FINETUNE_API_KEY (a project key: see README.md, \"Using it\").", 2);
        if (!Uri.TryCreate(baseUrl.TrimEnd('/') + "/", UriKind.Absolute, out var root) || root.Scheme is not ("http" or "https"))
        {
            throw new CliException($"'{baseUrl}' is not an http(s) URL.", 2);
        }

        if (root.AbsolutePath == "/")
        {
            // The gateway serves its API under /v1 only: a bare host:port answers every call with a 404.
            throw new CliException($"'{baseUrl}' has no API path: the platform's API root ends in /v1 (try {root}v1).", 2);
        }

        return Opened = new PlatformConnection(root, apiKey);
    }

    /// <summary>The connection the running command opened, so that a failure can name the URL it could not reach.</summary>
    public PlatformConnection? Opened { get; private set; }

    private static string? FirstSet(string? given, params string[] variables) =>
        new[] { given }.Concat(variables.Select(Environment.GetEnvironmentVariable)).FirstOrDefault(value => !string.IsNullOrWhiteSpace(value));
}

/// <summary>The SDK client for OpenAI's calls and an HttpClient for ours, both on the same root and key.</summary>
public sealed class PlatformConnection(Uri root, string apiKey)
{
    public Uri Root { get; } = root;

    // One retry, not the SDK's three with back-off: a platform that is down should be reported in a second.
    public OpenAIClient OpenAI { get; } = new(new ApiKeyCredential(apiKey), new OpenAIClientOptions
    {
        Endpoint = root,
        NetworkTimeout = TimeSpan.FromMinutes(10),
        RetryPolicy = new ClientRetryPolicy(maxRetries: 1),
    });

    public HttpClient Http { get; } = new()
    {
        BaseAddress = root,
        Timeout = Timeout.InfiniteTimeSpan,
        DefaultRequestHeaders = { Authorization = new AuthenticationHeaderValue("Bearer", apiKey) },
    };

    /// <summary>Sends a request and returns its JSON body, or throws the platform's error message.</summary>
    public async Task<JsonElement> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        using var response = await Http.SendAsync(request, cancellationToken);
        var text = await response.Content.ReadAsStringAsync(cancellationToken);
        if (!response.IsSuccessStatusCode)
        {
            throw ErrorOf((int)response.StatusCode, text);
        }

        try
        {
            return JsonDocument.Parse(text).RootElement.Clone();
        }
        catch (JsonException)
        {
            throw new CliException($"{Root} answered {request.RequestUri} with something that is not JSON; is it the platform's API root (…/v1)?");
        }
    }

    public Task<JsonElement> GetAsync(string path, CancellationToken cancellationToken) =>
        SendAsync(new HttpRequestMessage(HttpMethod.Get, path), cancellationToken);

    /// <summary>OpenAI's error shape as one line: the message, and which field (`param`) and why (`code`) when given.</summary>
    public CliException ErrorOf(int status, string body)
    {
        try
        {
            var error = JsonDocument.Parse(body).RootElement.GetProperty("error");
            var detail = string.Join(", ", new[] { ("param", error), ("code", error) }
                .Select(pair => pair.Item2.TryGetProperty(pair.Item1, out var value) && value.ValueKind == JsonValueKind.String ? $"{pair.Item1} {value.GetString()}" : null)
                .OfType<string>());
            return new CliException($"{status}: {error.GetProperty("message").GetString()}{(detail.Length > 0 ? $" ({detail})" : "")}");
        }
        catch (Exception ex) when (ex is JsonException or KeyNotFoundException or InvalidOperationException)
        {
            // Not the platform's error shape: a proxy, another server on the port, or a root without /v1.
            var hint = status == 404 && !Root.AbsolutePath.TrimEnd('/').EndsWith("/v1", StringComparison.Ordinal) ? $" (the platform's API root ends in /v1; --base-url is {Root})" : "";
            var text = body.ReplaceLineEndings(" ").Trim();
            return new CliException($"{status}: {(text.Length == 0 ? "no error message" : text.Length > 200 ? text[..200] + "…" : text)}{hint}");
        }
    }
}
