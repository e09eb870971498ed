using FineTunePlatform.Contracts.IntegrationEvents;
using FineTunePlatform.Contracts.Training;
using FineTunePlatform.Gateway.Infrastructure;
using Grpc.Core;
using MassTransit;
using Microsoft.EntityFrameworkCore;

namespace FineTunePlatform.Gateway.IntegrationEvents;

/// <summary>
/// Records a succeeded job's training tokens in the project's usage, one row per job (its id in place of a key id).
/// TrainingJobFinished is a nudge: the job's status, base model, tokens and finish day are read from the training
/// service (gRPC, internal token, scoped to the project the message names, so a job of another project is not
/// found). The row is set, not added to, so a redelivered or forged event counts the job's real tokens once.
/// </summary>
public sealed class TrainingJobFinishedConsumer(GatewayDbContext db, TrainingService.TrainingServiceClient training)
    : IConsumer<TrainingJobFinished>
{
    public async Task Consume(ConsumeContext<TrainingJobFinished> context)
    {
        var finished = context.Message;
        TrainingJob job;
        try
        {
            job = await training.GetJobAsync(new JobRequest { JobId = finished.JobId },
                new InternalCaller(finished.ProjectId, Roles.Reader, null).ToMetadata(),
                deadline: DateTime.UtcNow.AddSeconds(30), cancellationToken: context.CancellationToken);
        }
        catch (RpcException ex) when (ex.StatusCode == StatusCode.NotFound)
        {
            return;
        }

        if (job.Status != JobStatus.Succeeded || job.TrainedTokens <= 0 || job.FinishedAt <= 0)
        {
            return;
        }

        var day = DateOnly.FromDateTime(DateTimeOffset.FromUnixTimeSeconds(job.FinishedAt).UtcDateTime);
        await db.Database.ExecuteSqlInterpolatedAsync($"""
            INSERT INTO usage_daily ("ProjectId", "KeyId", "Model", "Day", "Requests", "PromptTokens", "CompletionTokens", "TrainingTokens")
            VALUES ({job.ProjectId}, {job.Id}, {job.Model}, {day}, 0, 0, 0, {job.TrainedTokens})
            ON CONFLICT ("ProjectId", "KeyId", "Model", "Day") DO UPDATE SET "TrainingTokens" = EXCLUDED."TrainingTokens"
            """, context.CancellationToken);
    }
}
