using System.Diagnostics;
using System.Globalization;

namespace FineTunePlatform.Gateway.OpenAI;

/// <summary>
/// OpenAI's headers on every response, errors included: `x-request-id` (`req_` + the request's trace id, so the id a
/// user quotes finds the trace in the dashboard and the log lines that carry it) and `openai-processing-ms` (time from
/// the request's arrival to its response headers).
/// </summary>
public static class ResponseHeaders
{
    public const string RequestId = "x-request-id";
    public const string ProcessingMilliseconds = "openai-processing-ms";

    public static Task AddAsync(HttpContext context, RequestDelegate next)
    {
        var started = Stopwatch.GetTimestamp();
        var requestId = "req_" + (Activity.Current?.TraceId.ToHexString() ?? context.TraceIdentifier);
        context.Items[RequestId] = requestId;
        context.Response.OnStarting(() =>
        {
            var headers = context.Response.Headers;
            headers[RequestId] = requestId;
            headers[ProcessingMilliseconds] = ((long)Stopwatch.GetElapsedTime(started).TotalMilliseconds).ToString(CultureInfo.InvariantCulture);
            return Task.CompletedTask;
        });
        return next(context);
    }

    /// <summary>The `x-request-id` this request is answered with (a stored completion keeps it).</summary>
    public static string RequestIdOf(HttpContext context) =>
        context.Items[RequestId] as string ?? "req_" + (Activity.Current?.TraceId.ToHexString() ?? context.TraceIdentifier);
}
