namespace Microsoft.Extensions.Hosting;

/// <summary>What kind of refusal a <see cref="PlatformException"/> is; each maps to one gRPC status and one HTTP status.</summary>
public enum PlatformErrorKind
{
    /// <summary>The request is malformed or names something it may not (400).</summary>
    InvalidArgument,

    /// <summary>The thing named does not exist for this caller (404).</summary>
    NotFound,

    /// <summary>The request is well formed but the current state refuses it (400, as OpenAI answers).</summary>
    FailedPrecondition,

    /// <summary>The caller's role may not do this (403).</summary>
    PermissionDenied,

    /// <summary>A quota or size limit is reached (429, or 413 for code payload_too_large).</summary>
    ResourceExhausted,
}

/// <summary>
/// The one exception domain code throws for a caller's mistake: a kind, a message for the caller, and OpenAI's
/// `param` and `code`. Domain code never builds transport errors; the gRPC edge (PlatformErrorInterceptor) and the
/// gateway's HTTP edge (OpenAIExceptionHandler) each map it once.
/// </summary>
public sealed class PlatformException(PlatformErrorKind kind, string message, string? param = null, string? code = null)
    : Exception(message)
{
    public PlatformErrorKind Kind { get; } = kind;

    public string? Param { get; } = param;

    public string? Code { get; } = code;

    public static PlatformException InvalidArgument(string message, string? param = null, string? code = null) =>
        new(PlatformErrorKind.InvalidArgument, message, param, code);

    public static PlatformException NotFound(string message, string? param = null, string? code = null) =>
        new(PlatformErrorKind.NotFound, message, param, code);

    public static PlatformException FailedPrecondition(string message, string? param = null, string? code = null) =>
        new(PlatformErrorKind.FailedPrecondition, message, param, code);

    public static PlatformException PermissionDenied(string message, string? code = null) =>
        new(PlatformErrorKind.PermissionDenied, message, null, code);

    public static PlatformException ResourceExhausted(string message, string? param = null, string? code = null) =>
        new(PlatformErrorKind.ResourceExhausted, message, param, code);
}
