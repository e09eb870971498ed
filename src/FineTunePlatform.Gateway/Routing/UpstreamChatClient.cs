using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;

namespace FineTunePlatform.Gateway.Routing;

/// <summary>Sends a chat request to the provider serving its model, with the provider's key.</summary>
public sealed class UpstreamChatClient(IHttpClientFactory clients)
{
    public const string HttpClientName = "upstream";

    /// <summary>Returns as soon as the provider's headers arrive, so streams can be relayed as they come.</summary>
    public async Task<HttpResponseMessage> SendAsync(ModelRoute route, JsonObject request, CancellationToken cancellationToken)
    {
        using var message = new HttpRequestMessage(HttpMethod.Post, route.Provider.BaseUrl.TrimEnd('/') + "/chat/completions")
        {
            Content = new StringContent(request.ToJsonString(), Encoding.UTF8, "application/json"),
        };
        if (!string.IsNullOrEmpty(route.Provider.ApiKey))
        {
            message.Headers.Authorization = new AuthenticationHeaderValue("Bearer", route.Provider.ApiKey);
        }

        return await clients.CreateClient(HttpClientName).SendAsync(message, HttpCompletionOption.ResponseHeadersRead, cancellationToken);
    }
}
