using System.Buffers;
using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using FineTunePlatform.Contracts.Datasets;
using FineTunePlatform.Contracts.StoredCompletions;
using Grpc.Core;

namespace FineTunePlatform.Evaluation.Runs;

/// <summary>
/// The items of a run's data source, in order, each as {"item": {...}, "sample": {...}?}: inline content, or the
/// lines of an uploaded JSONL file streamed from the dataset service as the run's project (so a run reads only
/// files its project may read). The file is never held whole: lines are cut from the chunks as they arrive. Stored
/// completions are read page by page from the gateway, which stores them, as the run's project too.
/// </summary>
public sealed class RunItems(DatasetService.DatasetServiceClient datasets, StoredCompletionService.StoredCompletionServiceClient storedCompletions)
{
    public const int MaxLineBytes = 1024 * 1024;

    private const int StoredCompletionsPage = 100;

    public async IAsyncEnumerable<(int Index, JsonObject Row)> ReadAsync(RunDataSource dataSource, Metadata caller, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        if (dataSource.StoredCompletions is { } stored)
        {
            await foreach (var entry in ReadStoredCompletionsAsync(stored, caller, cancellationToken))
            {
                yield return entry;
            }

            yield break;
        }

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

    /// <summary>The selected stored completions, oldest first, up to the source's `limit`.</summary>
    private async IAsyncEnumerable<(int Index, JsonObject Row)> ReadStoredCompletionsAsync(StoredCompletionsSource source, Metadata caller,
        [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var request = new ListStoredCompletionsRequest { Model = source.Model ?? "" };
        foreach (var (key, value) in source.Metadata)
        {
            request.Metadata[key] = value;
        }
        if (source.CreatedAfter is { } after)
        {
            request.CreatedAfter = after;
        }

        if (source.CreatedBefore is { } before)
        {
            request.CreatedBefore = before;
        }

        var index = 0;
        var remaining = source.Limit ?? int.MaxValue;
        while (remaining > 0)
        {
            request.Limit = Math.Min(StoredCompletionsPage, remaining);
            ListStoredCompletionsResponse page;
            try
            {
                page = await storedCompletions.ListStoredCompletionsAsync(request, caller, cancellationToken: cancellationToken);
            }
            catch (RpcException ex) when (ex.StatusCode is StatusCode.InvalidArgument or StatusCode.NotFound or StatusCode.PermissionDenied)
            {
                throw new RunFailedException("invalid_data_source", ex.Status.Detail);
            }

            foreach (var completion in page.Completions)
            {
                yield return (index++, StoredCompletionRow(completion));
            }

            remaining -= page.Completions.Count;
            if (!page.HasMore || page.Completions.Count == 0)
            {
                yield break;
            }

            request.After = page.Completions[^1].Id;
        }
    }

    /// <summary>
    /// A stored completion as a run's row: the request as `item.input`, the stored answer as OpenAI's sample (what
    /// graders read as `sample.output_text`). Sampling parameters the completion does not record are the defaults.
    /// </summary>
    public static JsonObject StoredCompletionRow(StoredCompletion completion)
    {
        var input = JsonNode.Parse(completion.InputMessagesJson)!.AsArray();
        var stored = JsonNode.Parse(completion.CompletionJson)!.AsObject();
        var choice = stored["choices"]?[0];
        var usage = stored["usage"] as JsonObject;
        var promptTokens = usage?["prompt_tokens"]?.GetValue<long>() ?? 0;
        var completionTokens = usage?["completion_tokens"]?.GetValue<long>() ?? 0;
        return new JsonObject
        {
            ["item"] = new JsonObject { ["input"] = input.DeepClone() },
            ["sample"] = new JsonObject
            {
                ["input"] = input.DeepClone(),
                ["output"] = new JsonArray(new JsonObject
                {
                    ["role"] = "assistant",
                    ["content"] = choice?["message"]?["content"]?.DeepClone(),
                }),
                ["finish_reason"] = choice?["finish_reason"]?.DeepClone() ?? "",
                ["model"] = stored["model"]?.DeepClone() ?? completion.Model,
                ["usage"] = RunProcessor.Usage(promptTokens, completionTokens),
                ["error"] = null,
                ["temperature"] = stored["temperature"]?.DeepClone() ?? 1,
                ["max_completion_tokens"] = stored["max_completion_tokens"]?.DeepClone(),
                ["top_p"] = stored["top_p"]?.DeepClone() ?? 1,
                ["seed"] = stored["seed"]?.DeepClone(),
            },
        };
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
