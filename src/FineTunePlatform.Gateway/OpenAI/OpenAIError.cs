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

    public static IResult PayloadTooLarge(string message, string? param = null) =>
        Result(StatusCodes.Status413PayloadTooLarge, message, InvalidRequestError, param, "payload_too_large");
}
