namespace FineTunePlatform.Contracts.IntegrationEvents;

/// <summary>
/// Command to the competing trainer workers: run this attempt of a job. A nudge only: the worker claims the attempt
/// from the training service before training, so a duplicate or stale delivery trains nothing.
/// </summary>
public sealed record TrainJob(string JobId, int Attempt) : IntegrationEvent;
