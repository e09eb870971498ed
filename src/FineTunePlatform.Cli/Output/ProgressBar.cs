using System.Diagnostics;
using FineTunePlatform.Cli.Commands;

namespace FineTunePlatform.Cli.Output;

/// <summary>
/// A one-line bar on stderr (`name [█████·····]  45%  12.3 MB of 27.0 MB  3.1 MB/s`), redrawn in place at most ten times a
/// second and left complete when done. Drawn only when stderr is a terminal: in a pipe or a log it would be noise.
/// </summary>
public sealed class ProgressBar(TextWriter error, string label, long total)
{
    private const int BarWidth = 30;
    private static readonly TimeSpan RedrawInterval = TimeSpan.FromMilliseconds(100);

    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private TimeSpan _drawnAt = TimeSpan.MinValue;
    private long _done;

    public void Advance(long bytes)
    {
        _done += bytes;
        if (_clock.Elapsed - _drawnAt >= RedrawInterval)
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

    private void Draw()
    {
        _drawnAt = _clock.Elapsed;
        var rate = _clock.Elapsed.TotalSeconds > 0 ? (long)(_done / _clock.Elapsed.TotalSeconds) : 0;
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

/// <summary>A file read for upload that advances a progress bar by what the request has read of it.</summary>
public sealed class ProgressFileStream(FileInfo file, ProgressBar? progress)
    : FileStream(file.FullName, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, useAsync: true)
{
    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        var read = await base.ReadAsync(buffer, cancellationToken);
        progress?.Advance(read);
        return read;
    }

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    // Spelled out so that every byte the request copies goes through ReadAsync above, whatever FileStream's own copy does.
    public override async Task CopyToAsync(Stream destination, int bufferSize, CancellationToken cancellationToken)
    {
        var buffer = new byte[bufferSize];
        int read;
        while ((read = await ReadAsync(buffer, cancellationToken)) > 0)
        {
            await destination.WriteAsync(buffer.AsMemory(0, read), cancellationToken);
        }
    }

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    public override int Read(Span<byte> buffer)
    {
        var read = base.Read(buffer);
        progress?.Advance(read);
        return read;
    }
}
