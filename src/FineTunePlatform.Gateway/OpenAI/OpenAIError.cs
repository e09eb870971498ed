using System.Text.Json.Serialization;

namespace FineTunePlatform.Gateway.OpenAI;

/// <summary>OpenAI's error envelope: {"error":{"message","type","param","code"}} (all four keys always present).</summary>
public sealed record OpenAIErrorResponse([property: JsonPropertyName("error")] OpenAIErrorBody Error);

public sealed record OpenAIErrorBody(
    [property: JsonPropertyName("message")] string Message,
    [property: JsonPropertyName("type")] string Type,
    [property: JsonPropertyName("param")] string? Param,
    [property: JsonPropertyName("code")] string? Code);

/// <summary>The one place errors are shaped: every API returns these instead of writing error JSON itself.</summary>
public static class OpenAIErrors
{
    public const string InvalidRequestError = "invalid_request_error";
    public const string AuthenticationError = "authentication_error";
    public const string PermissionError = "permission_error";
    public const string NotFoundError = "not_found_error";
    public const string RateLimitError = "rate_limit_error";
    public const string ServerError = "server_error";

    public static IResult Result(int statusCode, string message, string type, string? param = null, string? code = null) =>
        TypedResults.Json(new OpenAIErrorResponse(new OpenAIErrorBody(message, type, param, code)), statusCode: statusCode);

    public static IResult BadRequest(string message, string? param = null, string? code = null) =>
        Result(StatusCodes.Status400BadRequest, message, InvalidRequestError, param, code);

    public static IResult NotFound(string message, string? param = null, string? code = null) =>
        Result(StatusCodes.Status404NotFound, message, InvalidRequestError, param, code);

    public static IResult Forbidden(string message, string? code = null) =>
        Result(StatusCodes.Status403Forbidden, message, PermissionError, null, code);

    public static IResult Unauthorized(string message, string? code = null) =>
        Result(StatusCodes.Status401Unauthorized, message, InvalidRequestError, null, code);

    /// <summary>
    /// Error statuses the framework produces without a body (no route, wrong method or media type, a body that does
    /// not bind) get OpenAI's shape too.
    /// </summary>
    public static Task StatusCodePage(Microsoft.AspNetCore.Diagnostics.StatusCodeContext context)
    {
        var http = context.HttpContext;
        var request = $"{http.Request.Method} {http.Request.Path}";
        var result = http.Response.StatusCode switch
        {
            StatusCodes.Status404NotFound => NotFound($"Invalid URL ({request})"),
            StatusCodes.Status405MethodNotAllowed => Result(StatusCodes.Status405MethodNotAllowed, $"Method not allowed ({request})", InvalidRequestError),
            StatusCodes.Status415UnsupportedMediaType => Result(StatusCodes.Status415UnsupportedMediaType, "Unsupported media type: send the body as application/json.", InvalidRequestError),
            StatusCodes.Status400BadRequest => BadRequest("We could not parse the JSON body of your request: check that it is valid JSON with the documented fields."),
            var status => Result(status, $"The request failed with status {status}.", status >= 500 ? ServerError : InvalidRequestError),
        };
        return result.ExecuteAsync(http);
    }

    public static IResult PayloadTooLarge(string message, string? param = null) =>
        Result(StatusCodes.Status413PayloadTooLarge, message, InvalidRequestError, param, "payload_too_large");
}
