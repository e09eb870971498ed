using System.Security.Cryptography;
using System.Text;
using FineTunePlatform.Contracts;
using Grpc.Core;
using Grpc.Core.Interceptors;
using Microsoft.Extensions.Options;

namespace Microsoft.Extensions.Hosting;

/// <summary>
/// Authenticates every gRPC call a platform service serves, of every kind, before any service code runs: the call
/// must carry the shared internal token, and the caller it names (if any) is kept for
/// <see cref="InternalCallerExtensions.GetCaller"/>. Registered once per service by <c>AddInternalGrpc</c>, so a new
/// RPC cannot be left open by forgetting a check.
/// </summary>
public sealed class InternalAuthInterceptor(IOptions<InternalOptions> options) : Interceptor
{
    private readonly byte[] _token = Encoding.UTF8.GetBytes(options.Value.Token);

    public override Task<TResponse> UnaryServerHandler<TRequest, TResponse>(TRequest request, ServerCallContext context, UnaryServerMethod<TRequest, TResponse> continuation)
    {
        Authenticate(context);
        return continuation(request, context);
    }

    public override Task<TResponse> ClientStreamingServerHandler<TRequest, TResponse>(IAsyncStreamReader<TRequest> requestStream, ServerCallContext context, ClientStreamingServerMethod<TRequest, TResponse> continuation)
    {
        Authenticate(context);
        return continuation(requestStream, context);
    }

    public override Task ServerStreamingServerHandler<TRequest, TResponse>(TRequest request, IServerStreamWriter<TResponse> responseStream, ServerCallContext context, ServerStreamingServerMethod<TRequest, TResponse> continuation)
    {
        Authenticate(context);
        return continuation(request, responseStream, context);
    }

    public override Task DuplexStreamingServerHandler<TRequest, TResponse>(IAsyncStreamReader<TRequest> requestStream, IServerStreamWriter<TResponse> responseStream, ServerCallContext context, DuplexStreamingServerMethod<TRequest, TResponse> continuation)
    {
        Authenticate(context);
        return continuation(requestStream, responseStream, context);
    }

    private void Authenticate(ServerCallContext context)
    {
        var presented = context.RequestHeaders.GetValue(CallerMetadata.InternalToken);
        if (presented is null || !CryptographicOperations.FixedTimeEquals(Encoding.UTF8.GetBytes(presented), _token))
        {
            throw new RpcException(new Status(StatusCode.Unauthenticated, "internal token missing or wrong"));
        }

        context.SetCaller(InternalCaller.FromHeaders(context.RequestHeaders));
    }
}
