namespace FineTunePlatform.Training.Worker.Extensions;

internal static class Extensions
{
    /// <summary>Workers hold nothing durable: the bus brings work, the training service holds the truth.</summary>
    public static void AddApplicationServices(this IHostApplicationBuilder builder)
    {
        builder.AddMessageBus();

        builder.Services.AddGrpc();
    }
}
