using System.Net.Sockets;
using System.Text;

namespace FineTunePlatform.Gateway.Tests;

/// <summary>
/// HTTP/1.1 spoken by hand over a socket, for what HttpClient will not send: a Content-Length it does not mean,
/// non-ASCII header bytes, a body sent in the background while the answer is read.
/// </summary>
internal static class RawHttp
{
    public sealed record Answer(int Status, string Head, string Body);

    /// <summary>
    /// Sends `head` (request line and headers, CRLF-separated, without the blank line), then `body` from a background
    /// writer that stops quietly when the server closes, and reads the answer until the server closes or `timeout`.
    /// </summary>
    public static async Task<Answer> SendAsync(Uri server, string head, byte[]? headBytesOverride = null, Func<Stream, Task>? body = null, TimeSpan? timeout = null)
    {
        using var client = new TcpClient();
        await client.ConnectAsync(server.Host, server.Port);
        var stream = client.GetStream();
        await stream.WriteAsync(headBytesOverride ?? Encoding.ASCII.GetBytes(head + "\r\n\r\n"));
        var sending = body is null ? Task.CompletedTask : Task.Run(async () =>
        {
            try
            {
                await body(stream);
            }
            catch (IOException)
            {
                // The server answered and closed: what it read is what counts.
            }
        });

        using var cts = new CancellationTokenSource(timeout ?? TimeSpan.FromSeconds(20));
        var received = new MemoryStream();
        var buffer = new byte[16 * 1024];
        try
        {
            int read;
            while ((read = await stream.ReadAsync(buffer, cts.Token)) > 0)
            {
                received.Write(buffer, 0, read);
                if (Complete(received.ToArray()))
                {
                    break;
                }
            }
        }
        catch (IOException)
        {
            // A reset after the answer was read.
        }

        var text = Encoding.UTF8.GetString(received.ToArray());
        var split = text.IndexOf("\r\n\r\n", StringComparison.Ordinal);
        Assert.True(split > 0, $"no HTTP answer within the timeout; received: {text}");
        var status = int.Parse(text.AsSpan(9, 3), System.Globalization.CultureInfo.InvariantCulture);
        client.Close();
        await Task.WhenAny(sending, Task.Delay(TimeSpan.FromSeconds(5)));
        var answerHead = text[..split];
        var answerBody = text[(split + 4)..];
        return new Answer(status, answerHead, IsChunked(answerHead) ? Dechunk(answerBody) : answerBody);
    }

    /// <summary>A response whose body has fully arrived (by its Content-Length, or its last chunk).</summary>
    private static bool Complete(byte[] received)
    {
        var text = Encoding.ASCII.GetString(received);
        var split = text.IndexOf("\r\n\r\n", StringComparison.Ordinal);
        if (split < 0)
        {
            return false;
        }

        if (IsChunked(text[..split]))
        {
            return text.EndsWith("0\r\n\r\n", StringComparison.Ordinal);
        }

        var length = Header(text[..split], "Content-Length");
        return length is not null && received.Length - (split + 4) >= int.Parse(length, System.Globalization.CultureInfo.InvariantCulture);
    }

    private static string? Header(string head, string name) => head.Split("\r\n").Select(line => line.Split(':', 2))
        .FirstOrDefault(parts => parts.Length == 2 && parts[0].Equals(name, StringComparison.OrdinalIgnoreCase))?[1].Trim();

    private static bool IsChunked(string head) => Header(head, "Transfer-Encoding")?.Contains("chunked", StringComparison.OrdinalIgnoreCase) == true;

    private static string Dechunk(string body)
    {
        var result = new StringBuilder();
        var position = 0;
        while (true)
        {
            var lineEnd = body.IndexOf("\r\n", position, StringComparison.Ordinal);
            if (lineEnd < 0)
            {
                return result.ToString();
            }

            var size = Convert.ToInt32(body[position..lineEnd], 16);
            if (size == 0)
            {
                return result.ToString();
            }

            result.Append(body, lineEnd + 2, size);
            position = lineEnd + 2 + size + 2;
        }
    }
}
