using FineTunePlatform.Contracts.IntegrationEvents;
using MassTransit;
using OpenAI.Files;

namespace FineTunePlatform.Datasets.Tests;

public sealed class DatasetValidatedEventTests(FilesFixture fixture) : IClassFixture<FilesFixture>
{
    [Fact]
    public async Task Validation_publishes_dataset_validated_with_status_and_counts_on_the_bus()
    {
        var received = new List<DatasetValidated>();
        var arrived = new SemaphoreSlim(0);
        var bus = Bus.Factory.CreateUsingRabbitMq(rabbit =>
        {
            rabbit.Host(new Uri(fixture.RabbitMq));
            rabbit.ReceiveEndpoint($"test-dataset-validated-{Guid.NewGuid():N}", endpoint =>
            {
                endpoint.AutoDelete = true;
                endpoint.Handler<DatasetValidated>(context =>
                {
                    lock (received)
                    {
                        received.Add(context.Message);
                    }

                    arrived.Release();
                    return Task.CompletedTask;
                });
            });
        });
        await bus.StartAsync();
        try
        {
            var files = fixture.FileClient(fixture.TeamA.Key);
            OpenAIFile good = await files.UploadFileAsync(new MemoryStream(TrainingData.Jsonl(11)), "good.jsonl", FileUploadPurpose.FineTune);
            OpenAIFile bad = await files.UploadFileAsync(new MemoryStream(TrainingData.Jsonl(3)), "bad.jsonl", FileUploadPurpose.FineTune);

            var deadline = DateTime.UtcNow.AddSeconds(15);
            while (DateTime.UtcNow < deadline && !HasBoth())
            {
                await arrived.WaitAsync(TimeSpan.FromSeconds(1));
            }

            bool HasBoth()
            {
                lock (received)
                {
                    return received.Any(e => e.FileId == good.Id) && received.Any(e => e.FileId == bad.Id);
                }
            }

            Assert.True(HasBoth(), "both DatasetValidated events should arrive");
            var processed = received.Single(e => e.FileId == good.Id);
            Assert.Equal(("processed", "chat", 11L, 0L, fixture.TeamA.ProjectId), (processed.Status, processed.Format, processed.ExampleCount, processed.ErrorCount, processed.ProjectId));
            var failed = received.Single(e => e.FileId == bad.Id);
            Assert.Equal(("error", 1L), (failed.Status, failed.ErrorCount));
        }
        finally
        {
            await bus.StopAsync();
        }
    }
}
