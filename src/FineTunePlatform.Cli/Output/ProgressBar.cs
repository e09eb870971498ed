using FineTunePlatform.Cli.Commands;

namespace FineTunePlatform.Cli.Output;

/// <summary>
/// A one-line bar on stderr (`name [█████·····]  45%  12.3 MB of 27.0 MB  3.1 MB/s`), redrawn in place at most ten times a
/// second and left complete when done. Drawn only when stderr is a terminal: in a pipe or a log it would be noise.
/// </summary>
/// <remarks>The clock is a parameter so that a test decides when a tenth of a second has passed.</remarks>
public sealed class ProgressBar(TextWriter error, string label, long total, TimeProvider? time = null)
{
    private const int BarWidth = 30;
    private static readonly TimeSpan RedrawInterval = TimeSpan.FromMilliseconds(100);

    private readonly TimeProvider _time = time ?? TimeProvider.System;
    private readonly long _started = (time ?? TimeProvider.System).GetTimestamp();
    private TimeSpan? _drawnAt;
    private long _done;

    public void Advance(long bytes)
    {
        _done += bytes;
        if (_drawnAt is not { } drawn || Elapsed - drawn >= RedrawInterval)
        {
            Draw();
        }
    }

    /// <summary>The full bar, and the line ended so that what follows starts below it.</summary>
    public void Complete()
    {
        Draw();
        error.WriteLine();
    }

    private TimeSpan Elapsed => _time.GetElapsedTime(_started);

    private void Draw()
    {
        var elapsed = Elapsed;
        _drawnAt = elapsed;
        var rate = elapsed.TotalSeconds > 0 ? (long)(_done / elapsed.TotalSeconds) : 0;
        error.Write($"\r{Render(label, _done, total)}  {OpenWeightsCommands.Size(rate)}/s\u001b[K");
        error.Flush();
    }

    /// <summary>The bar's text for so many bytes of so many (pure: what the tests check).</summary>
    public static string Render(string label, long done, long total)
    {
        var fraction = total <= 0 ? 1 : Math.Clamp(done / (double)total, 0, 1);
        var filled = (int)Math.Round(fraction * BarWidth);
        return $"{label} [{new string('█', filled)}{new string('·', BarWidth - filled)}] {fraction * 100,3:0}%  {OpenWeightsCommands.Size(done)} of {OpenWeightsCommands.Size(total)}";
    }
}

/// <summary>
/// A file read for upload that advances a progress bar by what the request has read of it. A wrapper, not a FileStream
/// subclass: FileStream routes a subclass's reads between its overloads, and counting in more than one would loop.
/// </summary>
public sealed class ProgressFileStream(FileInfo file, ProgressBar? progress) : Stream
{
    private readonly FileStream _file = new(file.FullName, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, useAsync: true);

    public override bool CanRead => true;

    public override bool CanSeek => true;

    public override bool CanWrite => false;

    public override long Length => _file.Length;

    public override long Position
    {
        get => _file.Position;
        set => _file.Position = value;
    }

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        var read = await _file.ReadAsync(buffer, cancellationToken);
        progress?.Advance(read);
        return read;
    }

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override int Read(byte[] buffer, int offset, int count)
    {
        var read = _file.Read(buffer, offset, count);
        progress?.Advance(read);
        return read;
    }

    public override long Seek(long offset, SeekOrigin origin) => _file.Seek(offset, origin);

    public override void Flush()
    {
    }

    public override void SetLength(long value) => throw new NotSupportedException();

    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _file.Dispose();
        }

        base.Dispose(disposing);
    }
}
