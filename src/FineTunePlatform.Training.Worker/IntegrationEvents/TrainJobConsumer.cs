using FineTunePlatform.Contracts.IntegrationEvents;
using FineTunePlatform.Training.Worker.Training;
using MassTransit;
using Microsoft.Extensions.Options;

namespace FineTunePlatform.Training.Worker.IntegrationEvents;

/// <summary>
/// Competing consumer of TrainJob. The message stays unacknowledged while its job trains, so a worker's prefetch
/// (its slots) is its capacity and RabbitMQ hands work only to workers with a free slot.
/// </summary>
public sealed class TrainJobConsumer(JobRunner runner) : IConsumer<TrainJob>
{
    public Task Consume(ConsumeContext<TrainJob> context) => runner.RunAsync(context.Message, context.CancellationToken);
}

public sealed class TrainJobConsumerDefinition : ConsumerDefinition<TrainJobConsumer>
{
    private readonly int _slots;

    public TrainJobConsumerDefinition(IOptions<WorkerOptions> options)
    {
        _slots = Math.Max(1, options.Value.Slots);
        // The queue the training service's scheduler sends to (JobScheduler.TrainJobQueue).
        EndpointName = "train-job";
        ConcurrentMessageLimit = _slots;
    }

    protected override void ConfigureConsumer(IReceiveEndpointConfigurator endpointConfigurator, IConsumerConfigurator<TrainJobConsumer> consumerConfigurator, IRegistrationContext context)
    {
        endpointConfigurator.PrefetchCount = _slots;
    }
}
