using System.Text;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;

namespace FineTunePlatform.Gateway.OpenAI;

/// <summary>
/// The request line and header limits, answered in OpenAI's error shape. Kestrel answers its own limits (414, 431,
/// a 400 for a non-ASCII header) with an empty body and offers no hook to change that (aspnet/KestrelHttpServer#2947),
/// so Kestrel's limits are raised to a backstop well above ours and <see cref="EnforceAsync"/> applies ours first
/// thing in the pipeline. Only a request past the backstop still gets Kestrel's bare answer.
/// </summary>
public static class RequestLimits
{
    /// <summary>The request target (path and query): Kestrel's default request-line limit.</summary>
    public const int MaxRequestTargetLength = 8 * 1024;

    /// <summary>All header names and values together: Kestrel's default.</summary>
    public const int MaxHeadersLength = 32 * 1024;

    public static void ConfigureKestrel(KestrelServerOptions options)
    {
        options.Limits.MaxRequestLineSize = 8 * MaxRequestTargetLength;
        options.Limits.MaxRequestHeadersTotalSize = 8 * MaxHeadersLength;
        // Latin-1 maps every byte to a character, so a header with non-ASCII bytes reaches EnforceAsync (and is refused
        // there in OpenAI's shape) instead of failing in Kestrel's parser.
        options.RequestHeaderEncodingSelector = _ => Encoding.Latin1;
    }

    public static Task EnforceAsync(HttpContext context, RequestDelegate next)
    {
        var target = context.Features.Get<IHttpRequestFeature>()?.RawTarget ?? context.Request.Path.Value ?? "";
        if (target.Length > MaxRequestTargetLength)
        {
            return OpenAIErrors.Result(StatusCodes.Status414RequestUriTooLong,
                $"The request URL is longer than {MaxRequestTargetLength} characters.", OpenAIErrors.InvalidRequestError, null, "url_too_long").ExecuteAsync(context);
        }

        var headersLength = 0;
        foreach (var (name, values) in context.Request.Headers)
        {
            foreach (var value in values)
            {
                headersLength += name.Length + (value?.Length ?? 0) + 4;
                if (value is not null && !Ascii.IsValid(value))
                {
                    return OpenAIErrors.BadRequest($"The '{name}' header contains characters that are not ASCII.", null, "invalid_header").ExecuteAsync(context);
                }
            }
        }

        if (headersLength > MaxHeadersLength)
        {
            return OpenAIErrors.Result(StatusCodes.Status431RequestHeaderFieldsTooLarge,
                $"The request headers are larger than {MaxHeadersLength} bytes in total.", OpenAIErrors.InvalidRequestError, null, "headers_too_large").ExecuteAsync(context);
        }

        return next(context);
    }
}
