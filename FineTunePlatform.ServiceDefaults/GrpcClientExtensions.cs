using Grpc.Net.ClientFactory;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Http.Resilience;

namespace Microsoft.Extensions.Hosting;

public static class GrpcClientExtensions
{
    /// <summary>
    /// Registers a typed gRPC client for another platform service's "grpc" endpoint, addressed by its Aspire
    /// service-discovery name ("http://_grpc.datasets" resolves through services:datasets:grpc:0). Every service
    /// serves gRPC on its own HTTP/2-only endpoint because Kestrel cannot serve HTTP/1.1 and cleartext HTTP/2 on
    /// one port (dotnet/aspnetcore#56984), and /health must stay reachable over HTTP/1.1.
    /// The HTTP resilience handler is removed: its total timeout would cut streaming calls, and gRPC
    /// deadlines are set per call instead.
    /// </summary>
    public static IHttpClientBuilder AddInternalGrpcClient<TClient>(this IServiceCollection services, string serviceName)
        where TClient : class
    {
        var builder = services.AddGrpcClient<TClient>(options => options.Address = new Uri($"http://_grpc.{serviceName}"));
        return builder.WithoutResilienceHandlers();
    }

    /// <summary>
    /// Opts one client out of the standard resilience handler AddServiceDefaults gives every HttpClient: for streams
    /// (its total timeout would cut them) and for calls that must not be retried blindly.
    /// </summary>
    public static IHttpClientBuilder WithoutResilienceHandlers(this IHttpClientBuilder builder)
    {
#pragma warning disable EXTEXP0001 // Experimental, but it is the supported way to opt one client out of ConfigureHttpClientDefaults.
        builder.RemoveAllResilienceHandlers();
#pragma warning restore EXTEXP0001
        return builder;
    }
}
