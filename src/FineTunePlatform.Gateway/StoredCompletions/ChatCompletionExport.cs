using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using FineTunePlatform.Contracts.Datasets;
using FineTunePlatform.Gateway.OpenAI;
using Google.Protobuf;

namespace FineTunePlatform.Gateway.StoredCompletions;

/// <summary>
/// Our addition that closes the loop from production traffic to the next fine-tuning set: the stored completions a
/// filter selects, oldest first, written as a chat fine-tuning file (`{"messages": [...request, answer]}` a line)
/// into the project's files through the dataset service, which validates it like any upload. Pages are read and
/// streamed to the upload as they come, so memory stays flat whatever the selection.
/// </summary>
public sealed class ChatCompletionExport(StoredCompletionStore store, DatasetService.DatasetServiceClient datasets)
{
    public const int MaxCompletions = 50_000;

    private const int PageSize = 100;
    private const int ChunkBytes = 64 * 1024;

    public async Task<DatasetFile> ExportAsync(string projectId, StoredCompletionFilter filter, int limit, string filename, CancellationToken cancellationToken)
    {
        // The first page is read before the upload starts, so an empty selection is a clean 400 and stores no file.
        var (page, hasMore) = await store.ListAsync(projectId, filter, null, Math.Min(PageSize, limit), ascending: true, cancellationToken);
        var lines = page.Select(Line).OfType<string>().ToList();
        if (lines.Count == 0 && !hasMore)
        {
            throw new InvalidRequestException("No stored chat completion with an assistant answer matches these filters; nothing to export.", null, "no_stored_completions");
        }

        using var upload = datasets.Upload(cancellationToken: cancellationToken);
        await upload.RequestStream.WriteAsync(new UploadRequest { Metadata = new UploadMetadata { Filename = filename, Purpose = "fine-tune" } }, cancellationToken);
        var buffer = new MemoryStream();
        async Task SendAsync(bool final)
        {
            if (buffer.Length > 0 && (final || buffer.Length >= ChunkBytes))
            {
                await upload.RequestStream.WriteAsync(new UploadRequest { Chunk = ByteString.CopyFrom(buffer.GetBuffer(), 0, (int)buffer.Length) }, cancellationToken);
                buffer.SetLength(0);
            }
        }

        var taken = 0;
        while (true)
        {
            foreach (var line in lines)
            {
                buffer.Write(Encoding.UTF8.GetBytes(line));
                buffer.WriteByte((byte)'\n');
                await SendAsync(final: false);
            }

            taken += page.Count;
            if (!hasMore || taken >= limit)
            {
                break;
            }

            (page, hasMore) = await store.ListAsync(projectId, filter, page[^1].Id, Math.Min(PageSize, limit - taken), ascending: true, cancellationToken);
            lines = page.Select(Line).OfType<string>().ToList();
        }

        await SendAsync(final: true);
        await upload.RequestStream.CompleteAsync();
        return await upload.ResponseAsync;
    }

    /// <summary>
    /// One training example: the request's messages and the first choice's answer. Text content parts become plain
    /// text and `developer` becomes `system` (the fine-tuning format's roles); a completion without an answer is skipped.
    /// </summary>
    public static string? Line(StoredCompletion stored)
    {
        var answer = JsonNode.Parse(stored.Completion)?["choices"]?[0]?["message"];
        if (answer?["content"] is not JsonValue content || content.GetValueKind() != JsonValueKind.String)
        {
            return null;
        }

        var messages = new JsonArray();
        foreach (var node in JsonNode.Parse(stored.InputMessages)!.AsArray())
        {
            var message = (JsonObject)node!.DeepClone();
            if (message["role"]?.GetValue<string>() == "developer")
            {
                message["role"] = "system";
            }

            if (message["content"] is { } messageContent)
            {
                message["content"] = ChatCompletionObjects.MessageText(messageContent);
            }

            messages.Add(message);
        }

        messages.Add(new JsonObject { ["role"] = "assistant", ["content"] = content.GetValue<string>() });
        return new JsonObject { ["messages"] = messages }.ToJsonString();
    }
}
