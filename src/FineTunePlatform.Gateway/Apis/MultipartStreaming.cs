using Google.Protobuf;
using Grpc.Core;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.WebUtilities;
using Microsoft.Net.Http.Headers;

namespace FineTunePlatform.Gateway.Apis;

/// <summary>
/// Reads multipart/form-data bodies section by section without buffering them (no IFormFile: that would spool the
/// whole file first), so uploads stream from the client straight into the dataset service.
/// </summary>
internal static class MultipartStreaming
{
    /// <summary>Bytes per gRPC message when forwarding content: small enough to pipeline, large enough to be cheap.</summary>
    public const int ForwardChunkBytes = 256 * 1024;

    /// <summary>Multipart framing (boundaries, headers, small fields) allowed on top of the content limit.</summary>
    private const long FramingAllowance = 1024 * 1024;

    public static MultipartReader? CreateReader(HttpRequest request, long contentLimit)
    {
        if (!MediaTypeHeaderValue.TryParse(request.ContentType, out var mediaType)
            || !mediaType.MediaType.Equals("multipart/form-data", StringComparison.OrdinalIgnoreCase))
        {
            return null;
        }

        var boundary = HeaderUtilities.RemoveQuotes(mediaType.Boundary).Value;
        if (string.IsNullOrEmpty(boundary))
        {
            return null;
        }

        // Kestrel's 30 MB default would stop big files; the body is capped at the content limit plus framing instead,
        // so whatever the client declares (or does not: chunked) the gateway never reads past it. The dataset service
        // enforces the exact content limit; this cap is what stops a body with no or a false Content-Length.
        var sizeFeature = request.HttpContext.Features.Get<IHttpMaxRequestBodySizeFeature>();
        if (sizeFeature is { IsReadOnly: false })
        {
            sizeFeature.MaxRequestBodySize = contentLimit + FramingAllowance;
        }

        return new MultipartReader(boundary, request.Body) { BodyLengthLimit = contentLimit + FramingAllowance };
    }

    public static bool IsField(MultipartSection section, string name, out ContentDispositionHeaderValue? disposition) =>
        ContentDispositionHeaderValue.TryParse(section.ContentDisposition, out disposition)
        && HeaderUtilities.RemoveQuotes(disposition.Name).Equals(name, StringComparison.Ordinal);

    public static string FileName(ContentDispositionHeaderValue disposition) =>
        disposition.FileNameStar.HasValue ? disposition.FileNameStar.Value!
        : disposition.FileName.HasValue ? HeaderUtilities.RemoveQuotes(disposition.FileName).Value!
        : "file";

    /// <summary>Reads a small text field, refusing oversized ones.</summary>
    public static async Task<string> ReadTextAsync(MultipartSection section, CancellationToken cancellationToken)
    {
        using var reader = new StreamReader(section.Body);
        var buffer = new char[1025];
        var read = await reader.ReadBlockAsync(buffer, cancellationToken);
        if (read > 1024)
        {
            throw new BadHttpRequestException("A form field is longer than 1024 characters.");
        }

        return new string(buffer, 0, read).Trim();
    }

    /// <summary>
    /// Reads and discards the rest of a request body before answering an error mid-upload: a client still sending
    /// would otherwise see a broken pipe instead of our 413 (HTTP/1.1 clients read the response only after sending).
    /// Reading stops at the request's body cap (<see cref="CreateReader"/>) or after `maxBytes` more, whichever
    /// comes first; a client still sending then is cut off.
    /// </summary>
    public static async Task DrainAsync(HttpRequest request, long maxBytes)
    {
        var buffer = new byte[64 * 1024];
        long drained = 0;
        try
        {
            int read;
            while ((read = await request.Body.ReadAsync(buffer, request.HttpContext.RequestAborted)) > 0)
            {
                drained += read;
                if (drained > maxBytes)
                {
                    request.HttpContext.Abort();
                    return;
                }
            }
        }
        catch (Exception ex) when (ex is IOException or BadHttpRequestException or OperationCanceledException)
        {
            // The client went away: nothing left to answer.
        }
    }

    /// <summary>
    /// Writing to a client-streaming call fails once the service has already answered it (a limit, a bad request):
    /// then the service's own answer is the error to report, not the failed write.
    /// </summary>
    public static async Task<Exception> ServiceErrorOrAsync<TRequest, TResponse>(AsyncClientStreamingCall<TRequest, TResponse> call, Exception failure)
    {
        var response = call.ResponseAsync;
        if (await Task.WhenAny(response, Task.Delay(TimeSpan.FromSeconds(5))) == response
            && response.Exception?.InnerException is RpcException { StatusCode: not StatusCode.Cancelled } serviceError)
        {
            return serviceError;
        }

        return failure;
    }

    /// <summary>
    /// A body announced larger than the limit is refused on its Content-Length, before a byte of it is read. The
    /// connection is closed after the answer (rather than read to the end to keep it open), so a declared 3 GB costs
    /// the gateway nothing; clients that read while they send (curl, .NET's HttpClient) see the 413.
    /// </summary>
    public static IResult? RefuseDeclaredOver(HttpRequest request, long contentLimit, IResult tooLarge)
    {
        // No Content-Length (chunked) declares nothing: the body cap set by CreateReader stops it at the limit.
        if (request.ContentLength is not { } declared || declared <= contentLimit + FramingAllowance)
        {
            return null;
        }

        request.HttpContext.Response.Headers.Connection = "close";
        return tooLarge;
    }

    /// <summary>
    /// A read of a section's body; a body that ends before the section's closing boundary (a truncated or malformed
    /// request, not a dropped connection) is the client's mistake: a 400, not a server error.
    /// </summary>
    private static async ValueTask<int> ReadSectionAsync(Stream body, Memory<byte> buffer, CancellationToken cancellationToken)
    {
        try
        {
            return await body.ReadAsync(buffer, cancellationToken);
        }
        catch (IOException ex) when (!cancellationToken.IsCancellationRequested)
        {
            throw new BadHttpRequestException("The multipart body ended before the part's closing boundary.", ex);
        }
    }

    /// <summary>Forwards a section's body as chunks of `chunkBytes` (default <see cref="ForwardChunkBytes"/>), calling `write` for each.</summary>
    public static async Task ForwardAsync(Stream body, Func<ByteString, Task> write, CancellationToken cancellationToken, int chunkBytes = ForwardChunkBytes)
    {
        var buffer = new byte[chunkBytes];
        while (true)
        {
            var filled = 0;
            int read;
            while (filled < buffer.Length && (read = await ReadSectionAsync(body, buffer.AsMemory(filled), cancellationToken)) > 0)
            {
                filled += read;
            }

            if (filled == 0)
            {
                return;
            }

            await write(ByteString.CopyFrom(buffer, 0, filled));
            if (filled < buffer.Length)
            {
                return;
            }
        }
    }
}
