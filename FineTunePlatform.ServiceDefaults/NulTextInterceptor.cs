using Grpc.Core;
using Grpc.Core.Interceptors;
using Npgsql;

namespace Microsoft.Extensions.Hosting;

/// <summary>
/// PostgreSQL refuses a NUL character in any text, even as a query parameter (SQLSTATE 22021), so an id, cursor or
/// name holding one fails wherever it first reaches the database. That is the caller's mistake, not the server's:
/// every service's gRPC calls answer it with InvalidArgument (a 400 at the gateway) instead of an internal error.
/// Inputs that are stored are checked where they are read (MetadataLimits, StoredText) and name their field.
/// </summary>
public sealed class NulTextInterceptor : Interceptor
{
    public const string Message = "Text in this request contains a NUL character (\\u0000), which the platform cannot store or look up.";

    /// <summary>22021: a NUL in text; 22P05: a \u0000 escape in JSON that jsonb must take (a metadata filter).</summary>
    public static bool IsNulText(Exception exception) =>
        (exception as PostgresException ?? exception.InnerException as PostgresException)?.SqlState
            is PostgresErrorCodes.CharacterNotInRepertoire or PostgresErrorCodes.UntranslatableCharacter;

    public override async Task<TResponse> UnaryServerHandler<TRequest, TResponse>(TRequest request, ServerCallContext context, UnaryServerMethod<TRequest, TResponse> continuation)
    {
        try
        {
            return await continuation(request, context);
        }
        catch (Exception ex) when (IsNulText(ex))
        {
            throw RpcErrors.InvalidArgument(Message, null, "invalid_text");
        }
    }

    public override async Task<TResponse> ClientStreamingServerHandler<TRequest, TResponse>(IAsyncStreamReader<TRequest> requestStream, ServerCallContext context, ClientStreamingServerMethod<TRequest, TResponse> continuation)
    {
        try
        {
            return await continuation(requestStream, context);
        }
        catch (Exception ex) when (IsNulText(ex))
        {
            throw RpcErrors.InvalidArgument(Message, null, "invalid_text");
        }
    }

    public override async Task ServerStreamingServerHandler<TRequest, TResponse>(TRequest request, IServerStreamWriter<TResponse> responseStream, ServerCallContext context, ServerStreamingServerMethod<TRequest, TResponse> continuation)
    {
        try
        {
            await continuation(request, responseStream, context);
        }
        catch (Exception ex) when (IsNulText(ex))
        {
            throw RpcErrors.InvalidArgument(Message, null, "invalid_text");
        }
    }
}
