namespace FineTunePlatform.Contracts;

/// <summary>
/// gRPC metadata the gateway attaches to every internal call: the caller's project and role. Internal services
/// scope every query by this project and trust it only when the call also carries the shared internal token
/// (the gateway strips these headers from outside requests).
/// </summary>
public static class CallerMetadata
{
    public const string ProjectId = "x-ft-project-id";
    public const string Role = "x-ft-role";
    public const string KeyId = "x-ft-key-id";
    public const string InternalToken = "x-ft-internal-token";
}

/// <summary>
/// Trailers an internal service sets on a failed call so the gateway can answer in OpenAI's error shape
/// (`param` and `code` as well as the status and message).
/// </summary>
public static class ErrorMetadata
{
    public const string Param = "x-ft-error-param";
    public const string Code = "x-ft-error-code";
}
