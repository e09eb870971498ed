using FineTunePlatform.Contracts.IntegrationEvents;
using FineTunePlatform.Gateway.Infrastructure;
using MassTransit;
using Microsoft.EntityFrameworkCore;

namespace FineTunePlatform.Gateway.IntegrationEvents;

/// <summary>
/// Records a succeeded job's training tokens in the project's usage, one row per job (its id in place of a key id).
/// The row is set, not added to, so a redelivered event counts once.
/// </summary>
public sealed class TrainingJobFinishedConsumer(GatewayDbContext db) : IConsumer<TrainingJobFinished>
{
    public async Task Consume(ConsumeContext<TrainingJobFinished> context)
    {
        var finished = context.Message;
        if (finished.Status != JobStatus.Succeeded || finished.TrainedTokens <= 0)
        {
            return;
        }

        var day = DateOnly.FromDateTime(finished.OccurredAt.UtcDateTime);
        await db.Database.ExecuteSqlInterpolatedAsync($"""
            INSERT INTO usage_daily ("ProjectId", "KeyId", "Model", "Day", "Requests", "PromptTokens", "CompletionTokens", "TrainingTokens")
            VALUES ({finished.ProjectId}, {finished.JobId}, {finished.BaseModel}, {day}, 0, 0, 0, {finished.TrainedTokens})
            ON CONFLICT ("ProjectId", "KeyId", "Model", "Day") DO UPDATE SET "TrainingTokens" = EXCLUDED."TrainingTokens"
            """, context.CancellationToken);
    }
}
