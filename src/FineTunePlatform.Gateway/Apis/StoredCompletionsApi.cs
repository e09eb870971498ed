using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using FineTunePlatform.Gateway.Auth;
using FineTunePlatform.Gateway.OpenAI;
using FineTunePlatform.Gateway.StoredCompletions;

namespace FineTunePlatform.Gateway.Apis;

/// <summary>
/// OpenAI's stored chat completions (those created with `store: true`), per project: list, get, update metadata,
/// delete, and the request's messages. Our addition, `POST /v1/chat/completions/export`, writes the completions a
/// filter selects as a chat fine-tuning file. Readers list and read; members update, delete and export.
/// </summary>
public static class StoredCompletionsApi
{
    public static RouteGroupBuilder MapStoredCompletionsApi(this IEndpointRouteBuilder app)
    {
        var completions = app.MapGroup("/v1/chat/completions");
        completions.MapGet("", ListAsync).RequireAuthorization(Policies.Reader);
        // A literal segment outranks {completionId}, and a stored id always starts with `chatcmpl-`.
        completions.MapPost("/export", ExportAsync).RequireAuthorization(Policies.Member);
        completions.MapGet("/{completionId}", async (string completionId, HttpContext context, StoredCompletionStore store) =>
            Results.Json(ChatCompletionObjects.Completion(await store.GetAsync(context.GetCaller().ProjectId, completionId, context.RequestAborted))))
            .RequireAuthorization(Policies.Reader);
        completions.MapPost("/{completionId}", UpdateAsync).RequireAuthorization(Policies.Member);
        completions.MapDelete("/{completionId}", async (string completionId, HttpContext context, StoredCompletionStore store) =>
        {
            await store.DeleteAsync(context.GetCaller().ProjectId, completionId, context.RequestAborted);
            return Results.Json(ChatCompletionObjects.Deleted(completionId));
        }).RequireAuthorization(Policies.Member);
        completions.MapGet("/{completionId}/messages", ListMessagesAsync).RequireAuthorization(Policies.Reader);
        return completions;
    }

    private static async Task<IResult> ListAsync(HttpContext context, StoredCompletionStore store)
    {
        var request = context.Request;
        var filter = new StoredCompletionFilter(NullIfEmpty(request.Query["model"].ToString()), MetadataQuery(request));
        var (page, hasMore) = await store.ListAsync(context.GetCaller().ProjectId, filter, NullIfEmpty(request.Query["after"].ToString()),
            PageSizes.Of(OpenAIList.Limit(request)), OpenAIList.Ascending(request, defaultAscending: true), context.RequestAborted);
        return Results.Json(OpenAIList.Of(page.Select(ChatCompletionObjects.Completion), hasMore, withCursorIds: true));
    }

    private static async Task<IResult> UpdateAsync(string completionId, HttpContext context, StoredCompletionStore store)
    {
        var body = JsonObject.Create(await RequestBody.ReadObjectAsync(context.Request, context.RequestAborted))!;
        if (!body.ContainsKey("metadata"))
        {
            throw new InvalidRequestException("Missing required parameter: 'metadata'.", "metadata", "missing_required_parameter");
        }

        if (body.Select(pair => pair.Key).FirstOrDefault(key => key != "metadata") is { } other)
        {
            throw new InvalidRequestException($"Unrecognized request argument supplied: {other}. Only 'metadata' can be updated.", other, "unknown_parameter");
        }

        var metadata = ChatStorage.ReadMetadata(body["metadata"], "metadata");
        var updated = await store.UpdateMetadataAsync(context.GetCaller().ProjectId, completionId, metadata, context.RequestAborted);
        return Results.Json(ChatCompletionObjects.Completion(updated));
    }

    private static async Task<IResult> ListMessagesAsync(string completionId, HttpContext context, StoredCompletionStore store)
    {
        var request = context.Request;
        var limit = PageSizes.Of(OpenAIList.Limit(request));
        var ascending = OpenAIList.Ascending(request, defaultAscending: true);
        var stored = await store.GetAsync(context.GetCaller().ProjectId, completionId, context.RequestAborted);
        var messages = ChatCompletionObjects.Messages(stored);
        if (!ascending)
        {
            messages.Reverse();
        }

        var start = 0;
        if (NullIfEmpty(request.Query["after"].ToString()) is { } after)
        {
            var position = messages.FindIndex(message => message["id"]!.GetValue<string>() == after);
            start = position >= 0 ? position + 1 : throw new InvalidRequestException($"'after' names no message of chat completion '{completionId}': {after}", "after");
        }

        var page = messages.Skip(start).Take(limit).ToList();
        return Results.Json(OpenAIList.Of(page, start + page.Count < messages.Count, withCursorIds: true));
    }

    /// <summary>Our addition: the selected completions as a chat fine-tuning file (purpose `fine-tune`), validated like any upload.</summary>
    private static async Task<IResult> ExportAsync(HttpContext context, ChatCompletionExport export)
    {
        var body = await RequestBody.ReadObjectAsync(context.Request, context.RequestAborted);
        var filter = new StoredCompletionFilter(
            RequestBody.String(body, "model"),
            ChatStorage.ReadMetadata(JsonObject.Create(body)!["metadata"]?.DeepClone(), "metadata"),
            OptionalInteger(body, "created_after"),
            OptionalInteger(body, "created_before"));
        var limit = OptionalInteger(body, "limit") switch
        {
            null => ChatCompletionExport.MaxCompletions,
            >= 1 and <= ChatCompletionExport.MaxCompletions and var value => (int)value,
            var value => throw new InvalidRequestException(
                $"Invalid 'limit': expected an integer from 1 to {ChatCompletionExport.MaxCompletions}, but got {value} instead.", "limit", "invalid_value"),
        };
        var filename = RequestBody.String(body, "filename") ?? $"stored-completions-{DateTimeOffset.UtcNow.ToString("yyyyMMdd-HHmmss", CultureInfo.InvariantCulture)}.jsonl";
        var file = await export.ExportAsync(context.GetCaller().ProjectId, filter, limit, filename, context.RequestAborted);
        return TypedResults.Ok(FileObject.From(file));
    }

    /// <summary>`metadata[key]=value` query parameters: every pair must match.</summary>
    private static Dictionary<string, string> MetadataQuery(HttpRequest request)
    {
        var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (name, values) in request.Query)
        {
            if (name.StartsWith("metadata[", StringComparison.Ordinal) && name.EndsWith(']'))
            {
                metadata[name["metadata[".Length..^1]] = values.ToString();
            }
            else if (name == "metadata")
            {
                throw new InvalidRequestException("Invalid 'metadata': filter by pairs, as metadata[key]=value.", "metadata", "invalid_value");
            }
        }

        MetadataLimits.Check(metadata);
        return metadata;
    }

    private static long? OptionalInteger(JsonElement body, string name) =>
        !body.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null ? null
        : value.ValueKind == JsonValueKind.Number && value.TryGetInt64(out var number) ? number
        : throw new InvalidRequestException($"Invalid type for '{name}': expected an integer.", name, "invalid_type");

    private static string? NullIfEmpty(string value) => value.Length == 0 ? null : value;
}
