namespace FineTunePlatform.Gateway.Routing;

/// <summary>An OpenAI-compatible provider the gateway forwards models to (`Gateway:Upstreams:{name}`).</summary>
public sealed class UpstreamProvider
{
    /// <summary>Base URL including the version segment, e.g. https://api.openai.com/v1.</summary>
    public string BaseUrl { get; set; } = "";

    public string? ApiKey { get; set; }

    /// <summary>Model ids routed to this provider.</summary>
    public List<string> Models { get; set; } = [];
}

public sealed class UpstreamOptions : Dictionary<string, UpstreamProvider>;

/// <summary>Where a model id is served.</summary>
public sealed record ModelRoute(string Model, string ProviderName, UpstreamProvider Provider);

/// <summary>
/// Finds the upstream provider serving a model id. The built-in runtime's base presets are answered by
/// LocalModelRuntime; `ft:local-*` models join when the training service's registry serves their artifacts.
/// </summary>
public sealed class ModelRouter(Microsoft.Extensions.Options.IOptionsMonitor<UpstreamOptions> upstreams)
{
    public ModelRoute? Find(string model)
    {
        foreach (var (name, provider) in upstreams.CurrentValue)
        {
            if (provider.Models.Contains(model, StringComparer.Ordinal))
            {
                return new ModelRoute(model, name, provider);
            }
        }

        return null;
    }

    public IEnumerable<ModelRoute> All() =>
        upstreams.CurrentValue.SelectMany(pair => pair.Value.Models.Select(model => new ModelRoute(model, pair.Key, pair.Value)));
}
