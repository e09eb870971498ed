using FineTunePlatform.Contracts;
using Grpc.Core;
using Microsoft.AspNetCore.Diagnostics;

namespace FineTunePlatform.Gateway.OpenAI;

/// <summary>
/// Turns what escapes an endpoint into OpenAI's error shape: malformed request bodies are 400s, an internal
/// service's RpcException keeps its status, param and code, and only a genuine fault is a 500.
/// </summary>
public sealed partial class OpenAIExceptionHandler(ILogger<OpenAIExceptionHandler> logger) : IExceptionHandler
{
    public async ValueTask<bool> TryHandleAsync(HttpContext httpContext, Exception exception, CancellationToken cancellationToken)
    {
        var result = exception switch
        {
            BadHttpRequestException bad when bad.StatusCode == StatusCodes.Status413PayloadTooLarge =>
                OpenAIErrors.PayloadTooLarge(bad.Message),
            BadHttpRequestException bad => OpenAIErrors.Result(bad.StatusCode, RequestBodyMessage(bad), OpenAIErrors.InvalidRequestError),
            InvalidRequestException invalid => OpenAIErrors.BadRequest(invalid.Message, invalid.Param, invalid.Code),
            RpcException rpc => FromRpcException(rpc),
            PlatformException platform => FromRpcException(PlatformErrorInterceptor.ToRpcException(platform)),
            _ when PlatformErrorInterceptor.IsNulText(exception) => OpenAIErrors.BadRequest(PlatformErrorInterceptor.NulTextMessage, null, "invalid_text"),
            OperationCanceledException when httpContext.RequestAborted.IsCancellationRequested => null,
            _ => null,
        };

        if (result is null)
        {
            if (httpContext.RequestAborted.IsCancellationRequested)
            {
                return true;
            }

            LogUnhandled(logger, exception, httpContext.Request.Path);
            result = OpenAIErrors.Result(StatusCodes.Status500InternalServerError,
                "The server had an error while processing your request. Sorry about that!", OpenAIErrors.ServerError);
        }

        if (httpContext.Response.HasStarted)
        {
            return true;
        }

        await result.ExecuteAsync(httpContext);
        return true;
    }

    public static IResult FromRpcException(RpcException rpc)
    {
        var param = rpc.Trailers.GetValue(ErrorMetadata.Param);
        var code = rpc.Trailers.GetValue(ErrorMetadata.Code);
        var message = rpc.Status.Detail;
        return rpc.StatusCode switch
        {
            StatusCode.InvalidArgument or StatusCode.FailedPrecondition or StatusCode.OutOfRange =>
                OpenAIErrors.BadRequest(message, param, code),
            StatusCode.NotFound => OpenAIErrors.NotFound(message, param, code),
            StatusCode.AlreadyExists => OpenAIErrors.Result(StatusCodes.Status409Conflict, message, OpenAIErrors.InvalidRequestError, param, code),
            StatusCode.PermissionDenied => OpenAIErrors.Forbidden(message, code),
            StatusCode.Unauthenticated => OpenAIErrors.Unauthorized(message, code),
            StatusCode.ResourceExhausted when code == "payload_too_large" => OpenAIErrors.PayloadTooLarge(message, param),
            StatusCode.ResourceExhausted => OpenAIErrors.Result(StatusCodes.Status429TooManyRequests, message, OpenAIErrors.RateLimitError, param, code),
            StatusCode.Unavailable or StatusCode.DeadlineExceeded => OpenAIErrors.Result(StatusCodes.Status503ServiceUnavailable,
                "A platform service is temporarily unavailable; retry the request.", OpenAIErrors.ServerError, null, "service_unavailable"),
            _ => OpenAIErrors.Result(StatusCodes.Status500InternalServerError,
                "The server had an error while processing your request. Sorry about that!", OpenAIErrors.ServerError),
        };
    }

    private static string RequestBodyMessage(BadHttpRequestException exception) =>
        exception.InnerException is System.Text.Json.JsonException json
            ? $"We could not parse the JSON body of your request. ({json.Message})"
            : exception.Message;

    [LoggerMessage(LogLevel.Error, "Unhandled exception serving {Path}")]
    private static partial void LogUnhandled(ILogger logger, Exception exception, string path);
}
