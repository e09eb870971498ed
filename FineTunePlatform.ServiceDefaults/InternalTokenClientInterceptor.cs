using FineTunePlatform.Contracts;
using Grpc.Core;
using Grpc.Core.Interceptors;
using Microsoft.Extensions.Options;

namespace Microsoft.Extensions.Hosting;

/// <summary>
/// Stamps every outgoing call of an internal gRPC client (all of them are registered by AddInternalGrpcClient) with
/// the internal token, and, where a subclass knows one, the caller the call acts for, unless the call names its
/// caller explicitly (<see cref="InternalCaller.ToMetadata"/>).
/// </summary>
public class InternalTokenClientInterceptor(IOptions<InternalOptions> options) : Interceptor
{
    private readonly string _token = options.Value.Token;

    public override AsyncUnaryCall<TResponse> AsyncUnaryCall<TRequest, TResponse>(TRequest request, ClientInterceptorContext<TRequest, TResponse> context, AsyncUnaryCallContinuation<TRequest, TResponse> continuation) =>
        continuation(request, WithMetadata(context));

    public override AsyncClientStreamingCall<TRequest, TResponse> AsyncClientStreamingCall<TRequest, TResponse>(ClientInterceptorContext<TRequest, TResponse> context, AsyncClientStreamingCallContinuation<TRequest, TResponse> continuation) =>
        continuation(WithMetadata(context));

    public override AsyncServerStreamingCall<TResponse> AsyncServerStreamingCall<TRequest, TResponse>(TRequest request, ClientInterceptorContext<TRequest, TResponse> context, AsyncServerStreamingCallContinuation<TRequest, TResponse> continuation) =>
        continuation(request, WithMetadata(context));

    public override AsyncDuplexStreamingCall<TRequest, TResponse> AsyncDuplexStreamingCall<TRequest, TResponse>(ClientInterceptorContext<TRequest, TResponse> context, AsyncDuplexStreamingCallContinuation<TRequest, TResponse> continuation) =>
        continuation(WithMetadata(context));

    /// <summary>The caller a call acts for when its code names none; null for calls the platform makes for itself.</summary>
    protected virtual InternalCaller? AmbientCaller() => null;

    private ClientInterceptorContext<TRequest, TResponse> WithMetadata<TRequest, TResponse>(ClientInterceptorContext<TRequest, TResponse> context)
        where TRequest : class
        where TResponse : class
    {
        var headers = context.Options.Headers ?? [];
        if (headers.Get(CallerMetadata.InternalToken) is null)
        {
            headers.Add(CallerMetadata.InternalToken, _token);
        }

        if (headers.Get(CallerMetadata.ProjectId) is null && AmbientCaller() is { } caller)
        {
            foreach (var entry in caller.ToMetadata())
            {
                headers.Add(entry);
            }
        }

        return new ClientInterceptorContext<TRequest, TResponse>(context.Method, context.Host, context.Options.WithHeaders(headers));
    }
}
