using Grpc.AspNetCore.Server;
using Grpc.Core;
using Grpc.Net.Client.Configuration;
using Grpc.Net.ClientFactory;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Http.Resilience;
using Microsoft.Extensions.Options;

namespace Microsoft.Extensions.Hosting;

/// <summary>How a platform service serves gRPC to, and calls, the other platform services.</summary>
public static class InternalGrpcExtensions
{
    /// <summary>
    /// Serves this service's gRPC endpoints with the platform's two interceptors on every call: internal
    /// authentication first (nothing runs for a call without the token), then the mapping of domain refusals.
    /// </summary>
    public static IServiceCollection AddInternalGrpc(this IServiceCollection services, Action<GrpcServiceOptions>? configure = null)
    {
        services.AddInternalOptions();
        services.AddGrpc(options =>
        {
            options.Interceptors.Add<InternalAuthInterceptor>();
            options.Interceptors.Add<PlatformErrorInterceptor>();
            configure?.Invoke(options);
        });
        return services;
    }

    /// <summary>Binds and validates `Internal:Token` when the host starts (once, however often it is asked for).</summary>
    public static IServiceCollection AddInternalOptions(this IServiceCollection services)
    {
        services.AddOptions<InternalOptions>().BindConfiguration(InternalOptions.SectionName).ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<InternalOptions>, InternalOptionsValidator>());
        return services;
    }

    /// <summary>
    /// A call that could not reach a replica (connection refused or reset before the server answered: Unavailable) is
    /// sent again, after a short backoff, and service discovery's round robin sends the retry to the next replica. gRPC
    /// retries only calls that got no response headers yet, so no server has acted on them: safe for every method.
    /// Five attempts outlast one or two dead replicas of three; a dead replica costs milliseconds, not a failed call.
    /// </summary>
    public static readonly RetryPolicy ReplicaRetryPolicy = new()
    {
        MaxAttempts = 5,
        InitialBackoff = TimeSpan.FromMilliseconds(50),
        MaxBackoff = TimeSpan.FromSeconds(1),
        BackoffMultiplier = 2,
        RetryableStatusCodes = { StatusCode.Unavailable },
    };

    /// <summary>
    /// Registers a typed gRPC client for another platform service's "grpc" endpoint, addressed by its Aspire
    /// service-discovery name ("http://_grpc.datasets" resolves through services:datasets:grpc:0, :1, ... for
    /// replicas), whose every call carries the internal token and is retried on another replica when one is down
    /// (<see cref="ReplicaRetryPolicy"/>). Every service serves gRPC on its own HTTP/2-only endpoint because Kestrel
    /// cannot serve HTTP/1.1 and cleartext HTTP/2 on one port (dotnet/aspnetcore#56984), and /health must stay
    /// reachable over HTTP/1.1. The HTTP resilience handler is removed: its total timeout would cut streaming calls,
    /// and gRPC deadlines are set per call instead.
    /// </summary>
    public static IHttpClientBuilder AddInternalGrpcClient<TClient>(this IServiceCollection services, string serviceName)
        where TClient : class
    {
        services.AddInternalOptions();
        services.TryAddSingleton<InternalTokenClientInterceptor>();
        var builder = services.AddGrpcClient<TClient>(options => options.Address = new Uri($"http://_grpc.{serviceName}"))
            .AddInterceptor<InternalTokenClientInterceptor>()
            .ConfigureChannel(channel => channel.ServiceConfig = new ServiceConfig
            {
                MethodConfigs = { new MethodConfig { Names = { MethodName.Default }, RetryPolicy = ReplicaRetryPolicy } },
            });
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
