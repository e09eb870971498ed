using FineTunePlatform.Contracts;
using Grpc.Core;

namespace Microsoft.Extensions.Hosting;

/// <summary>
/// The one way internal services fail a call for a caller's mistake: a status plus OpenAI's `param` and `code`
/// in trailers, which the gateway turns into {"error":{...}} with the matching HTTP status.
/// </summary>
public static class RpcErrors
{
    public static RpcException InvalidArgument(string message, string? param = null, string? code = null) =>
        Create(StatusCode.InvalidArgument, message, param, code);

    public static RpcException NotFound(string message, string? param = null, string? code = null) =>
        Create(StatusCode.NotFound, message, param, code);

    public static RpcException FailedPrecondition(string message, string? param = null, string? code = null) =>
        Create(StatusCode.FailedPrecondition, message, param, code);

    public static RpcException PermissionDenied(string message, string? code = null) =>
        Create(StatusCode.PermissionDenied, message, null, code);

    public static RpcException ResourceExhausted(string message, string? param = null, string? code = null) =>
        Create(StatusCode.ResourceExhausted, message, param, code);

    public static RpcException Create(StatusCode status, string message, string? param, string? code)
    {
        var trailers = new Metadata();
        if (param is not null)
        {
            trailers.Add(ErrorMetadata.Param, param);
        }

        if (code is not null)
        {
            trailers.Add(ErrorMetadata.Code, code);
        }

        return new RpcException(new Status(status, message), trailers, message);
    }
}
