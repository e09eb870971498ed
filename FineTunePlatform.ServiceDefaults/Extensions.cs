using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Diagnostics.HealthChecks;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using OpenTelemetry;
using OpenTelemetry.Metrics;
using OpenTelemetry.Trace;

namespace Microsoft.Extensions.Hosting;

// What Aspire's service-defaults template gives every service, with two deliberate differences:
// /health and /alive are mapped in every environment (run.sh and the tests probe them), and the
// standard resilience handler is kept off gRPC clients (see AddInternalGrpcClient) because its
// 30 s total timeout would cut long client- and server-streaming calls.
public static class Extensions
{
    public const string AlivenessTag = "live";
    public const string HealthEndpointPath = "/health";
    public const string AlivenessEndpointPath = "/alive";

    public static TBuilder AddServiceDefaults<TBuilder>(this TBuilder builder) where TBuilder : IHostApplicationBuilder
    {
        builder.ConfigureOpenTelemetry();
        builder.AddDefaultHealthChecks();

        builder.Services.AddServiceDiscovery();
        builder.Services.ConfigureHttpClientDefaults(http =>
        {
            http.AddStandardResilienceHandler();
            http.AddServiceDiscovery();
        });

        return builder;
    }

    public static TBuilder ConfigureOpenTelemetry<TBuilder>(this TBuilder builder) where TBuilder : IHostApplicationBuilder
    {
        builder.Logging.AddOpenTelemetry(logging =>
        {
            logging.IncludeFormattedMessage = true;
            logging.IncludeScopes = true;
        });

        builder.Services.AddOpenTelemetry()
            .WithMetrics(metrics => metrics
                .AddAspNetCoreInstrumentation()
                .AddHttpClientInstrumentation()
                .AddRuntimeInstrumentation()
                .AddMeter("MassTransit")
                .AddMeter(Telemetry.MeterName))
            .WithTracing(tracing => tracing
                .AddSource(builder.Environment.ApplicationName)
                .AddSource("MassTransit")
                .AddSource(Telemetry.ActivitySourceName)
                .AddAspNetCoreInstrumentation(options => options.Filter = context => !IsUntraced(context.Request.Path.Value))
                .AddGrpcClientInstrumentation(options => options.Filter = request => !IsUntraced(request.RequestUri?.AbsolutePath))
                .AddHttpClientInstrumentation(options => options.FilterHttpRequestMessage = request => !IsUntraced(request.RequestUri?.AbsolutePath)));

        if (!string.IsNullOrWhiteSpace(builder.Configuration["OTEL_EXPORTER_OTLP_ENDPOINT"]))
        {
            builder.Services.AddOpenTelemetry().UseOtlpExporter();
        }

        return builder;
    }

    /// <summary>
    /// Calls made on a timer rather than on anyone's behalf: health probes and the workers' presence announcements
    /// (every few seconds each), which traced would drown the interesting traces in the dashboard.
    /// </summary>
    private static readonly string[] UntracedPaths =
    [
        HealthEndpointPath,
        AlivenessEndpointPath,
        "/finetuneplatform.training.v1.TrainerService/RegisterWorker",
    ];

    private static bool IsUntraced(string? path) =>
        path is not null && UntracedPaths.Any(untraced => path.StartsWith(untraced, StringComparison.Ordinal));

    public static TBuilder AddDefaultHealthChecks<TBuilder>(this TBuilder builder) where TBuilder : IHostApplicationBuilder
    {
        builder.Services.AddHealthChecks()
            .AddCheck("self", () => HealthCheckResult.Healthy(), [AlivenessTag]);
        return builder;
    }

    /// <summary>
    /// /health is readiness (every registered check): 200 when Healthy or Degraded (a dependency the service can do
    /// without is down, such as the gateway's Redis), 503 when Unhealthy; /alive is liveness (only checks tagged
    /// "live": the process is responsive). Both answer statuses only (<see cref="HealthResponseWriter"/>).
    /// </summary>
    public static WebApplication MapDefaultEndpoints(this WebApplication app)
    {
        app.MapHealthChecks(HealthEndpointPath, new HealthCheckOptions { ResponseWriter = HealthResponseWriter.WriteAsync });
        app.MapHealthChecks(AlivenessEndpointPath, new HealthCheckOptions
        {
            Predicate = registration => registration.Tags.Contains(AlivenessTag),
            ResponseWriter = HealthResponseWriter.WriteAsync,
        });
        return app;
    }
}
