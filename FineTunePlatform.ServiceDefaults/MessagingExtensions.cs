using MassTransit;
using Microsoft.Extensions.DependencyInjection;

namespace Microsoft.Extensions.Hosting;

/// <summary>
/// RabbitMQ through MassTransit 8.5 (Apache-2.0; 9.x is commercial) from Aspire's `ConnectionStrings:rabbitmq`
/// amqp:// URI. MassTransit adds its own bus health check (tagged "ready") and its OpenTelemetry source
/// "MassTransit" is exported by ConfigureOpenTelemetry. Its anonymous usage telemetry (on by default since 8.4, a
/// report posted to MassTransit's own host after the bus starts) is off: a self-hosted platform sends nothing outside
/// the machines it runs on.
/// </summary>
public static class MessagingExtensions
{
    public static void AddMessageBus(
        this IHostApplicationBuilder builder,
        Action<IBusRegistrationConfigurator>? configure = null,
        string connectionName = "rabbitmq")
    {
        var hostUri = builder.GetRabbitMqUri(connectionName);

        builder.Services.AddMassTransit(bus =>
        {
            bus.DisableUsageTelemetry();
            bus.SetKebabCaseEndpointNameFormatter();
            // Nobody consumes MassTransit's Fault<T> events (a failed message is in the consumer's logs and its _error
            // queue), and publishing them would need every service's broker user to declare, bind and write the
            // fault exchanges of every type it consumes (docs/security.md, the broker's permissions).
            bus.AddConfigureEndpointsCallback((_, endpoint) => endpoint.PublishFaults = false);
            configure?.Invoke(bus);
            bus.UsingRabbitMq((context, rabbit) =>
            {
                rabbit.Host(hostUri);
                rabbit.ConfigureEndpoints(context);
            });
        });

        builder.Services.Configure<MassTransitHostOptions>(options =>
        {
            // A service is not ready until it can publish; /health reports the bus either way.
            options.WaitUntilStarted = true;
            options.StartTimeout = TimeSpan.FromSeconds(60);
            options.StopTimeout = TimeSpan.FromSeconds(15);
        });
    }

    public static Uri GetRabbitMqUri(this IHostApplicationBuilder builder, string connectionName = "rabbitmq")
    {
        const string example = "amqp://guest:guest@127.0.0.1:5672";
        var connectionString = builder.Configuration.GetRequiredConnectionString(connectionName, example);
        if (!Uri.TryCreate(connectionString, UriKind.Absolute, out var uri)
            || (uri.Scheme != "amqp" && uri.Scheme != "amqps"))
        {
            throw ConnectionStringExtensions.Malformed(connectionName, example, "it must be an amqp:// or amqps:// URI");
        }

        return uri;
    }
}
