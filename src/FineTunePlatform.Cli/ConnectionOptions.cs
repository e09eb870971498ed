using System.ClientModel;
using System.CommandLine;
using System.Net.Http.Headers;
using System.Text.Json;
using OpenAI;

namespace FineTunePlatform.Cli;

/// <summary>
/// Where the platform is and which key to use: `--base-url`/`--api-key`, else FINETUNE_BASE_URL/FINETUNE_API_KEY,
/// else OPENAI_BASE_URL/OPENAI_API_KEY (so a shell already set up for the OpenAI SDK works unchanged).
/// </summary>
public sealed class ConnectionOptions
{
    public Option<string?> BaseUrl { get; } = new("--base-url")
    {
        Description = "The platform's API root, e.g. http://127.0.0.1:8080/v1 (default: $FINETUNE_BASE_URL, then $OPENAI_BASE_URL).",
        Recursive = true,
    };

    public Option<string?> ApiKey { get; } = new("--api-key")
    {
        Description = "A project API key (default: $FINETUNE_API_KEY, then $OPENAI_API_KEY).",
        Recursive = true,
    };

    public PlatformConnection Open(ParseResult parse)
    {
        var baseUrl = parse.GetValue(BaseUrl) ?? Environment.GetEnvironmentVariable("FINETUNE_BASE_URL") ?? Environment.GetEnvironmentVariable("OPENAI_BASE_URL")
            ?? throw new CliException("no platform address: pass --base-url or set FINETUNE_BASE_URL (e.g. http://127.0.0.1:8080/v1).", 2);
        var apiKey = parse.GetValue(ApiKey) ?? Environment.GetEnvironmentVariable("FINETUNE_API_KEY") ?? Environment.GetEnvironmentVariable("OPENAI_API_KEY")
            ?? throw new CliException("no API key: pass --api-key or set FINETUNE_API_KEY.", 2);
        if (!Uri.TryCreate(baseUrl.TrimEnd('/') + "/", UriKind.Absolute, out var root) || root.Scheme is not ("http" or "https"))
        {
            throw new CliException($"'{baseUrl}' is not an http(s) URL.", 2);
        }

        return new PlatformConnection(root, apiKey);
    }
}

/// <summary>The SDK client for OpenAI's calls and an HttpClient for ours, both on the same root and key.</summary>
public sealed class PlatformConnection(Uri root, string apiKey)
{
    public OpenAIClient OpenAI { get; } = new(new ApiKeyCredential(apiKey), new OpenAIClientOptions { Endpoint = root, NetworkTimeout = TimeSpan.FromMinutes(10) });

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
        return response.IsSuccessStatusCode ? JsonDocument.Parse(text).RootElement.Clone() : throw ErrorOf((int)response.StatusCode, text);
    }

    /// <summary>OpenAI's error shape as one line: the message, and which field (`param`) and why (`code`) when given.</summary>
    public static CliException ErrorOf(int status, string body)
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
            return new CliException($"{status}: {body}");
        }
    }
}
