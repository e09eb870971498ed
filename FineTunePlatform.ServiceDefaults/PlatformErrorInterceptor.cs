using FineTunePlatform.Contracts;
using Grpc.Core;
using Grpc.Core.Interceptors;
using Npgsql;

namespace Microsoft.Extensions.Hosting;

/// <summary>
/// The one place a service's domain refusals become gRPC errors: a <see cref="PlatformException"/> becomes its status
/// with OpenAI's `param` and `code` in trailers (which the gateway turns into {"error":{...}} with the matching HTTP
/// status), and text PostgreSQL cannot hold becomes InvalidArgument.
/// </summary>
public sealed class PlatformErrorInterceptor : Interceptor
{
    public const string NulTextMessage = "Text in this request contains a NUL character (\\u0000), which the platform cannot store or look up.";

    /// <summary>
    /// PostgreSQL refuses a NUL character in any text, even as a query parameter (22021), and a \u0000 escape in JSON
    /// that jsonb must take (22P05, a metadata filter), so an id, cursor or name holding one fails wherever it first
    /// reaches the database. That is the caller's mistake, not the server's. Inputs that are stored are checked where
    /// they are read (MetadataLimits, StoredText) and name their field.
    /// </summary>
    public static bool IsNulText(Exception exception) =>
        (exception as PostgresException ?? exception.InnerException as PostgresException)?.SqlState
            is PostgresErrorCodes.CharacterNotInRepertoire or PostgresErrorCodes.UntranslatableCharacter;

    public static StatusCode ToStatusCode(PlatformErrorKind kind) => kind switch
    {
        PlatformErrorKind.InvalidArgument => StatusCode.InvalidArgument,
        PlatformErrorKind.NotFound => StatusCode.NotFound,
        PlatformErrorKind.FailedPrecondition => StatusCode.FailedPrecondition,
        PlatformErrorKind.PermissionDenied => StatusCode.PermissionDenied,
        PlatformErrorKind.ResourceExhausted => StatusCode.ResourceExhausted,
        _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, null),
    };

    public static RpcException ToRpcException(PlatformException exception)
    {
        var trailers = new Metadata();
        if (exception.Param is not null)
        {
            trailers.Add(ErrorMetadata.Param, exception.Param);
        }

        if (exception.Code is not null)
        {
            trailers.Add(ErrorMetadata.Code, exception.Code);
        }

        return new RpcException(new Status(ToStatusCode(exception.Kind), exception.Message), trailers, exception.Message);
    }

    public override async Task<TResponse> UnaryServerHandler<TRequest, TResponse>(TRequest request, ServerCallContext context, UnaryServerMethod<TRequest, TResponse> continuation)
    {
        try
        {
            return await continuation(request, context);
        }
        catch (Exception ex) when (Translate(ex) is { } rpc)
        {
            throw rpc;
        }
    }

    public override async Task<TResponse> ClientStreamingServerHandler<TRequest, TResponse>(IAsyncStreamReader<TRequest> requestStream, ServerCallContext context, ClientStreamingServerMethod<TRequest, TResponse> continuation)
    {
        try
        {
            return await continuation(requestStream, context);
        }
        catch (Exception ex) when (Translate(ex) is { } rpc)
        {
            throw rpc;
        }
    }

    public override async Task ServerStreamingServerHandler<TRequest, TResponse>(TRequest request, IServerStreamWriter<TResponse> responseStream, ServerCallContext context, ServerStreamingServerMethod<TRequest, TResponse> continuation)
    {
        try
        {
            await continuation(request, responseStream, context);
        }
        catch (Exception ex) when (Translate(ex) is { } rpc)
        {
            throw rpc;
        }
    }

    public override async Task DuplexStreamingServerHandler<TRequest, TResponse>(IAsyncStreamReader<TRequest> requestStream, IServerStreamWriter<TResponse> responseStream, ServerCallContext context, DuplexStreamingServerMethod<TRequest, TResponse> continuation)
    {
        try
        {
            await continuation(requestStream, responseStream, context);
        }
        catch (Exception ex) when (Translate(ex) is { } rpc)
        {
            throw rpc;
        }
    }

    private static RpcException? Translate(Exception exception) => exception switch
    {
        PlatformException platform => ToRpcException(platform),
        _ when IsNulText(exception) => ToRpcException(PlatformException.InvalidArgument(NulTextMessage, null, "invalid_text")),
        _ => null,
    };
}
