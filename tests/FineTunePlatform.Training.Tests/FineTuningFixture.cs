namespace FineTunePlatform.Training.Tests;

/// <summary>One platform with two in-process workers, shared by the API tests, and two teams with member keys.</summary>
public sealed class FineTuningFixture : IAsyncLifetime
{
    public TrainingPlatform Platform { get; private set; } = null!;

    public (string ProjectId, string Key) TeamA { get; private set; }

    public (string ProjectId, string Key) TeamB { get; private set; }

    public string TeamAFile { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        Platform = await TrainingPlatform.StartAsync("finetuning", workers: 2, slotsPerWorker: 2);
        TeamA = await Platform.Admin.CreateProjectAsync("owner");
        TeamB = await Platform.Admin.CreateProjectAsync("owner");
        TeamAFile = await Platform.UploadTrainingFileAsync(TeamA.Key);
    }

    public async Task DisposeAsync() => await Platform.DisposeAsync();
}
