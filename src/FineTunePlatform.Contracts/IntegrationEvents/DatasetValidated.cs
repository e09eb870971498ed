namespace FineTunePlatform.Contracts.IntegrationEvents;

/// <summary>A fine-tuning file finished validation: `processed` (usable for training) or `error` (see its report).</summary>
public sealed record DatasetValidated(
    string FileId,
    string ProjectId,
    string Status,
    string? Format,
    long ExampleCount,
    long ErrorCount,
    long TotalTokens) : IntegrationEvent;
