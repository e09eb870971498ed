using FineTunePlatform.Contracts;
using Grpc.Core;
using Grpc.Core.Interceptors;

namespace FineTunePlatform.Gateway.Auth;

/// <summary>
/// Attaches the authenticated caller (project, role, key) and the internal token to every gRPC call the gateway
/// makes to an internal service while serving a request, so no endpoint can forget to scope a call.
/// </summary>
public sealed class CallerForwardingInterceptor(IHttpContextAccessor httpContextAccessor, IConfiguration configuration) : Interceptor
{
    private readonly string _internalToken = configuration.GetInternalToken();

    public override AsyncUnaryCall<TResponse> AsyncUnaryCall<TRequest, TResponse>(TRequest request, ClientInterceptorContext<TRequest, TResponse> context, AsyncUnaryCallContinuation<TRequest, TResponse> continuation) =>
        continuation(request, WithCaller(context));

    public override AsyncClientStreamingCall<TRequest, TResponse> AsyncClientStreamingCall<TRequest, TResponse>(ClientInterceptorContext<TRequest, TResponse> context, AsyncClientStreamingCallContinuation<TRequest, TResponse> continuation) =>
        continuation(WithCaller(context));

    public override AsyncServerStreamingCall<TResponse> AsyncServerStreamingCall<TRequest, TResponse>(TRequest request, ClientInterceptorContext<TRequest, TResponse> context, AsyncServerStreamingCallContinuation<TRequest, TResponse> continuation) =>
        continuation(request, WithCaller(context));

    public override AsyncDuplexStreamingCall<TRequest, TResponse> AsyncDuplexStreamingCall<TRequest, TResponse>(ClientInterceptorContext<TRequest, TResponse> context, AsyncDuplexStreamingCallContinuation<TRequest, TResponse> continuation) =>
        continuation(WithCaller(context));

    private ClientInterceptorContext<TRequest, TResponse> WithCaller<TRequest, TResponse>(ClientInterceptorContext<TRequest, TResponse> context)
        where TRequest : class
        where TResponse : class
    {
        if (context.Options.Headers?.Get(CallerMetadata.InternalToken) is not null)
        {
            // The call names its caller explicitly (a gRPC request served by the gateway acts for the caller it was given).
            return context;
        }

        var user = httpContextAccessor.HttpContext?.User;
        if (user?.Identity?.IsAuthenticated != true)
        {
            throw new InvalidOperationException("Internal calls are made only on behalf of an authenticated caller.");
        }

        var headers = context.Options.Headers ?? [];
        foreach (var entry in user.GetCaller().ToMetadata(_internalToken))
        {
            headers.Add(entry);
        }

        return new ClientInterceptorContext<TRequest, TResponse>(context.Method, context.Host, context.Options.WithHeaders(headers));
    }
}
