using System.Text;

namespace FineTunePlatform.Datasets.Tests;

/// <summary>
/// A read-only stream over a byte range of a synthetic chat JSONL file of fixed-length lines, generated as it is
/// read, so gigabytes can be uploaded without holding them in memory.
/// </summary>
internal sealed class SyntheticJsonlStream(long start, long end, int lineLength) : Stream
{
    private readonly long _start = start;
    private long _position = start;
    private long _cachedLine = -1;
    private byte[] _cached = [];

    public static byte[] Line(long index, int lineLength)
    {
        var prefix = $"{{\"messages\":[{{\"role\":\"user\",\"content\":\"Ticket {index}: the invoice is wrong ";
        const string suffix = "\"},{\"role\":\"assistant\",\"content\":\"billing\"}]}\n";
        var padding = lineLength - Encoding.UTF8.GetByteCount(prefix) - Encoding.UTF8.GetByteCount(suffix);
        var words = new StringBuilder(padding);
        while (words.Length < padding)
        {
            words.Append("please check it ", 0, Math.Min(16, padding - words.Length));
        }

        return Encoding.UTF8.GetBytes(prefix + words + suffix);
    }

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    public override int Read(Span<byte> buffer)
    {
        var written = 0;
        while (written < buffer.Length && _position < end)
        {
            var lineIndex = _position / lineLength;
            if (lineIndex != _cachedLine)
            {
                _cached = Line(lineIndex, lineLength);
                _cachedLine = lineIndex;
            }

            var within = (int)(_position % lineLength);
            var take = (int)Math.Min(Math.Min(lineLength - within, buffer.Length - written), end - _position);
            _cached.AsSpan(within, take).CopyTo(buffer[written..]);
            written += take;
            _position += take;
        }

        return written;
    }

    public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) => ValueTask.FromResult(Read(buffer.Span));

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) => Task.FromResult(Read(buffer, offset, count));

    public override bool CanRead => true;

    public override bool CanSeek => false;

    public override bool CanWrite => false;

    public override long Length => end - _start;

    public override long Position { get => _position - _start; set => throw new NotSupportedException(); }

    public override void Flush()
    {
    }

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
}
