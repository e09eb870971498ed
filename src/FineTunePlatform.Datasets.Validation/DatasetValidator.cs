using System.Threading.Channels;

namespace FineTunePlatform.Datasets.Validation;

/// <summary>
/// Validates a JSONL file while it streams in: splits bytes into lines (a line may span chunks; an over-long line is
/// reported and skipped, never buffered), checks lines in parallel batches on every core, and aggregates counts,
/// statistics and the first errors of each category. Memory is bounded by the batches in flight, whatever the size
/// of the file.
/// </summary>
public sealed class DatasetValidator
{
    private const int BatchBytes = 1 << 20;
    private static readonly byte[] ByteOrderMark = [0xEF, 0xBB, 0xBF];

    private readonly ExampleValidator _validator;
    private readonly ValidationOptions _options;
    private readonly int _maxTokensPerExample;
    private readonly Channel<LineBatch> _batches;
    private readonly Task[] _workers;
    private readonly ReportAggregator _aggregate;

    private LineBatch _batch = new();
    private byte[] _partial = new byte[4096];
    private int _partialLength;
    private bool _skippingLongLine;
    private long _lineNumber = 1;
    private long _bytes;

    public DatasetValidator(ValidationOptions options, string? baseModel, TokenCounter tokens)
    {
        _options = options;
        _maxTokensPerExample = options.MaxTokensFor(baseModel);
        _validator = new ExampleValidator(tokens, _maxTokensPerExample);
        _aggregate = new ReportAggregator(options.MaxListedErrorsPerCategory);
        var parallelism = Math.Max(1, options.Parallelism);
        _batches = Channel.CreateBounded<LineBatch>(new BoundedChannelOptions(parallelism * 2) { SingleWriter = true });
        _workers = Enumerable.Range(0, parallelism).Select(_ => Task.Run(ValidateBatchesAsync)).ToArray();
    }

    public async ValueTask AppendAsync(ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
    {
        _bytes += data.Length;
        var remaining = data;
        while (!remaining.IsEmpty)
        {
            var newline = remaining.Span.IndexOf((byte)'\n');
            var segment = newline < 0 ? remaining : remaining[..newline];
            AppendToCurrentLine(segment.Span);
            if (newline < 0)
            {
                break;
            }

            await EndLineAsync(cancellationToken);
            remaining = remaining[(newline + 1)..];
        }
    }

    public async Task<DatasetReport> CompleteAsync(CancellationToken cancellationToken)
    {
        // The text after the last newline is a line only if it holds something (a trailing newline ends a file).
        if (_partialLength > 0 || _skippingLongLine)
        {
            await EndLineAsync(cancellationToken);
        }

        await FlushBatchAsync(cancellationToken);
        _batches.Writer.Complete();
        await Task.WhenAll(_workers);
        return _aggregate.Build(_bytes, lineCount: _lineNumber - 1, _options.MinExamples, _maxTokensPerExample);
    }

    /// <summary>A whole file, read as it streams: what the CLI checks offline and the benchmark measures.</summary>
    public async Task<DatasetReport> ValidateAsync(Stream file, CancellationToken cancellationToken)
    {
        var buffer = new byte[BatchBytes];
        int read;
        while ((read = await file.ReadAsync(buffer, cancellationToken)) > 0)
        {
            await AppendAsync(buffer.AsMemory(0, read), cancellationToken);
        }

        return await CompleteAsync(cancellationToken);
    }

    private void AppendToCurrentLine(ReadOnlySpan<byte> segment)
    {
        if (_skippingLongLine || segment.IsEmpty)
        {
            return;
        }

        if (_partialLength + segment.Length > _options.MaxLineBytes)
        {
            _skippingLongLine = true;
            _partialLength = 0;
            return;
        }

        if (_partialLength + segment.Length > _partial.Length)
        {
            Array.Resize(ref _partial, Math.Max(_partial.Length * 2, _partialLength + segment.Length));
        }

        segment.CopyTo(_partial.AsSpan(_partialLength));
        _partialLength += segment.Length;
    }

    private async ValueTask EndLineAsync(CancellationToken cancellationToken)
    {
        var lineNumber = _lineNumber++;
        if (_skippingLongLine)
        {
            _skippingLongLine = false;
            _aggregate.AddError(new LineError(ValidationCategories.LineTooLong, lineNumber, "$",
                $"The line is longer than the limit of {_options.MaxLineBytes} bytes."));
            return;
        }

        var line = _partial.AsMemory(0, _partialLength);
        _partialLength = 0;
        if (lineNumber == 1 && line.Span.StartsWith(ByteOrderMark))
        {
            _aggregate.AddError(new LineError(ValidationCategories.ByteOrderMark, 1, "$",
                "The file starts with a UTF-8 byte order mark; save it as UTF-8 without a BOM."));
            line = line[ByteOrderMark.Length..];
        }

        // CRLF files are fine: the carriage return is whitespace to JSON, but an empty line is an error.
        if (line.Span.Trim("\r\t "u8).IsEmpty)
        {
            _aggregate.AddError(new LineError(ValidationCategories.EmptyLine, lineNumber, "$", "The line is empty; every line must hold one example."));
            return;
        }

        if (!_batch.TryAdd(line.Span, lineNumber))
        {
            await FlushBatchAsync(cancellationToken);
            if (!_batch.TryAdd(line.Span, lineNumber))
            {
                // A line larger than a batch travels alone.
                await _batches.Writer.WriteAsync(LineBatch.Single(line.Span, lineNumber), cancellationToken);
            }
        }
    }

    private async ValueTask FlushBatchAsync(CancellationToken cancellationToken)
    {
        if (_batch.Count == 0)
        {
            return;
        }

        await _batches.Writer.WriteAsync(_batch, cancellationToken);
        _batch = new LineBatch();
    }

    private async Task ValidateBatchesAsync()
    {
        await foreach (var batch in _batches.Reader.ReadAllAsync())
        {
            var results = new List<(long Line, ExampleResult Result)>(batch.Count);
            foreach (var (offset, length, line) in batch.Lines)
            {
                results.Add((line, _validator.Validate(batch.Buffer.AsMemory(offset, length), line)));
            }

            _aggregate.Add(results);
        }
    }

    private sealed class LineBatch
    {
        public byte[] Buffer { get; private init; } = new byte[BatchBytes];

        public List<(int Offset, int Length, long Line)> Lines { get; } = [];

        public int Count => Lines.Count;

        private int _used;

        public bool TryAdd(ReadOnlySpan<byte> line, long lineNumber)
        {
            if (_used + line.Length > Buffer.Length)
            {
                return false;
            }

            line.CopyTo(Buffer.AsSpan(_used));
            Lines.Add((_used, line.Length, lineNumber));
            _used += line.Length;
            return true;
        }

        public static LineBatch Single(ReadOnlySpan<byte> line, long lineNumber)
        {
            var batch = new LineBatch { Buffer = new byte[line.Length] };
            batch.TryAdd(line, lineNumber);
            return batch;
        }
    }
}
