using System.Text.Json;
using FineTunePlatform.Contracts.StoredCompletions;
using FineTunePlatform.Gateway.StoredCompletions;
using Grpc.Core;
using StoredCompletionMessage = FineTunePlatform.Contracts.StoredCompletions.StoredCompletion;

namespace FineTunePlatform.Gateway.Grpc;

/// <summary>
/// Stored completions for the evaluation service's `stored_completions` data source, read as the project in the
/// call's metadata through the same store (and filters) as GET /v1/chat/completions.
/// </summary>
public sealed class StoredCompletionGrpcService(StoredCompletionStore store) : StoredCompletionService.StoredCompletionServiceBase
{
    public override async Task<ListStoredCompletionsResponse> ListStoredCompletions(ListStoredCompletionsRequest request, ServerCallContext context)
    {
        var caller = context.GetCaller();
        var filter = new StoredCompletionFilter(request.Model.Length == 0 ? null : request.Model, request.Metadata,
            request.HasCreatedAfter ? request.CreatedAfter : null, request.HasCreatedBefore ? request.CreatedBefore : null);
        var (page, hasMore) = await store.ListAsync(caller.ProjectId, filter, request.After.Length == 0 ? null : request.After,
            PageSizes.Of(request.Limit), ascending: true, context.CancellationToken);
        var response = new ListStoredCompletionsResponse { HasMore = hasMore };
        foreach (var stored in page)
        {
            var message = new StoredCompletionMessage
            {
                Id = stored.Id,
                Model = stored.Model,
                Created = stored.Created,
                InputMessagesJson = stored.InputMessages,
                CompletionJson = stored.Completion,
            };
            message.Metadata.Add(JsonSerializer.Deserialize<Dictionary<string, string>>(stored.Metadata)!);
            response.Completions.Add(message);
        }

        return response;
    }
}
