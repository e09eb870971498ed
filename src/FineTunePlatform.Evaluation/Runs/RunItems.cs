using System.Buffers;
using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using FineTunePlatform.Contracts.Datasets;
using Grpc.Core;

namespace FineTunePlatform.Evaluation.Runs;

/// <summary>
/// The items of a run's data source, in order, each as {"item": {...}, "sample": {...}?}: inline content, or the
/// lines of an uploaded JSONL file streamed from the dataset service as the run's project (so a run reads only
/// files its project may read). The file is never held whole: lines are cut from the chunks as they arrive.
/// </summary>
public sealed class RunItems(DatasetService.DatasetServiceClient datasets)
{
    public const int MaxLineBytes = 1024 * 1024;

    public async IAsyncEnumerable<(int Index, JsonObject Row)> ReadAsync(RunDataSource dataSource, Metadata caller, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        if (dataSource.InlineContent is { } content)
        {
            for (var i = 0; i < content.Count; i++)
            {
                yield return (i, (JsonObject)content[i]!.DeepClone());
            }

            yield break;
        }

        using var call = datasets.ReadContent(new ReadContentRequest { FileId = dataSource.FileId }, caller, cancellationToken: cancellationToken);
        var line = new ArrayBufferWriter<byte>();
        var lineNumber = 0;
        var index = 0;
        await foreach (var chunk in ReadChunksAsync(call, cancellationToken))
        {
            var data = chunk.Data.Memory;
            while (!data.IsEmpty)
            {
                var newline = data.Span.IndexOf((byte)'\n');
                var piece = newline < 0 ? data : data[..newline];
                if (line.WrittenCount + piece.Length > MaxLineBytes)
                {
                    throw new RunFailedException("invalid_data_source", $"Line {lineNumber + 1} of file {dataSource.FileId} is longer than {MaxLineBytes} bytes.");
                }

                line.Write(piece.Span);
                if (newline < 0)
                {
                    break;
                }

                data = data[(newline + 1)..];
                lineNumber++;
                if (Row(line.WrittenSpan, lineNumber, dataSource.FileId!) is { } row)
                {
                    yield return (index++, row);
                }

                line.Clear();
            }
        }

        if (line.WrittenCount > 0 && Row(line.WrittenSpan, lineNumber + 1, dataSource.FileId!) is { } last)
        {
            yield return (index, last);
        }
    }

    private static async IAsyncEnumerable<ContentChunk> ReadChunksAsync(AsyncServerStreamingCall<ContentChunk> call, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var stream = call.ResponseStream;
        while (true)
        {
            try
            {
                if (!await stream.MoveNext(cancellationToken))
                {
                    yield break;
                }
            }
            catch (RpcException ex) when (ex.StatusCode is StatusCode.NotFound or StatusCode.PermissionDenied)
            {
                throw new RunFailedException("file_not_found", ex.Status.Detail);
            }

            yield return stream.Current;
        }
    }

    /// <summary>One JSONL line as a row; blank lines are skipped.</summary>
    private static JsonObject? Row(ReadOnlySpan<byte> line, int lineNumber, string fileId)
    {
        var text = Encoding.UTF8.GetString(line).Trim();
        if (text.Length == 0)
        {
            return null;
        }

        try
        {
            return JsonNode.Parse(text) is JsonObject { } row && row["item"] is not null
                ? row
                : throw new RunFailedException("invalid_data_source", $"Line {lineNumber} of file {fileId} must be an object with an 'item'.");
        }
        catch (JsonException)
        {
            throw new RunFailedException("invalid_data_source", $"Line {lineNumber} of file {fileId} is not valid JSON.");
        }
    }
}

/// <summary>A run cannot go on (its file is missing or malformed, its model unreachable): it ends failed with this error.</summary>
public sealed class RunFailedException(string code, string message) : Exception(message)
{
    public string Code { get; } = code;
}
