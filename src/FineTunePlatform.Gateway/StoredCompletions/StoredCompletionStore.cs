using System.Text.Json;
using FineTunePlatform.Gateway.Infrastructure;
using Microsoft.EntityFrameworkCore;

namespace FineTunePlatform.Gateway.StoredCompletions;

/// <summary>
/// Which stored completions a list, an eval run or an export takes: OpenAI's filters (model, every metadata pair,
/// `created` strictly between the bounds).
/// </summary>
public sealed record StoredCompletionFilter(string? Model, IReadOnlyDictionary<string, string> Metadata, long? CreatedAfter = null, long? CreatedBefore = null)
{
    public static readonly StoredCompletionFilter All = new(null, new Dictionary<string, string>());
}

/// <summary>
/// The one place stored completions are read and changed, always within one project: another project's id is
/// answered exactly like an id that never existed (404).
/// </summary>
public sealed class StoredCompletionStore(GatewayDbContext db)
{
    public async Task<StoredCompletion> GetAsync(string projectId, string completionId, CancellationToken cancellationToken) =>
        await db.StoredCompletions.AsNoTracking().FirstOrDefaultAsync(completion => completion.ProjectId == projectId && completion.Id == completionId, cancellationToken)
        ?? throw NotFound(completionId);

    /// <summary>A page in `created` order (ties in insertion order), after the completion `after` names; `limit` rows at most.</summary>
    public async Task<(List<StoredCompletion> Page, bool HasMore)> ListAsync(string projectId, StoredCompletionFilter filter, string? after, int limit, bool ascending,
        CancellationToken cancellationToken)
    {
        var query = Matching(projectId, filter);
        if (!string.IsNullOrEmpty(after))
        {
            var cursor = await db.StoredCompletions.AsNoTracking()
                .Where(completion => completion.ProjectId == projectId && completion.Id == after)
                .Select(completion => new { completion.Created, completion.Sequence })
                .FirstOrDefaultAsync(cancellationToken)
                ?? throw PlatformException.InvalidArgument($"'after' names no stored chat completion of this project: {after}", "after");
            query = ascending
                ? query.Where(completion => completion.Created > cursor.Created || (completion.Created == cursor.Created && completion.Sequence > cursor.Sequence))
                : query.Where(completion => completion.Created < cursor.Created || (completion.Created == cursor.Created && completion.Sequence < cursor.Sequence));
        }

        query = ascending
            ? query.OrderBy(completion => completion.Created).ThenBy(completion => completion.Sequence)
            : query.OrderByDescending(completion => completion.Created).ThenByDescending(completion => completion.Sequence);
        var rows = await query.Take(limit + 1).ToListAsync(cancellationToken);
        var hasMore = rows.Count > limit;
        return (hasMore ? rows[..limit] : rows, hasMore);
    }

    /// <summary>Replaces the metadata (OpenAI's update: the given object is the new metadata, `null` clears it).</summary>
    public async Task<StoredCompletion> UpdateMetadataAsync(string projectId, string completionId, IReadOnlyDictionary<string, string> metadata, CancellationToken cancellationToken)
    {
        var completion = await db.StoredCompletions.FirstOrDefaultAsync(completion => completion.ProjectId == projectId && completion.Id == completionId, cancellationToken)
            ?? throw NotFound(completionId);
        completion.Metadata = JsonSerializer.Serialize(metadata);
        await db.SaveChangesAsync(cancellationToken);
        return completion;
    }

    public async Task DeleteAsync(string projectId, string completionId, CancellationToken cancellationToken)
    {
        var deleted = await db.StoredCompletions.Where(completion => completion.ProjectId == projectId && completion.Id == completionId).ExecuteDeleteAsync(cancellationToken);
        if (deleted == 0)
        {
            throw NotFound(completionId);
        }
    }

    private IQueryable<StoredCompletion> Matching(string projectId, StoredCompletionFilter filter)
    {
        var query = db.StoredCompletions.AsNoTracking().Where(completion => completion.ProjectId == projectId);
        if (!string.IsNullOrEmpty(filter.Model))
        {
            query = query.Where(completion => completion.Model == filter.Model);
        }

        if (filter.Metadata.Count > 0)
        {
            // jsonb containment: every pair asked for is among the completion's metadata (served by its GIN index).
            var pairs = JsonSerializer.Serialize(filter.Metadata);
            query = query.Where(completion => EF.Functions.JsonContains(completion.Metadata, pairs));
        }

        if (filter.CreatedAfter is { } createdAfter)
        {
            query = query.Where(completion => completion.Created > createdAfter);
        }

        if (filter.CreatedBefore is { } createdBefore)
        {
            query = query.Where(completion => completion.Created < createdBefore);
        }

        return query;
    }

    private static PlatformException NotFound(string completionId) =>
        PlatformException.NotFound($"No chat completion found with id '{completionId}'.", "completion_id");
}
