using System.Text.Json;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace Microsoft.Extensions.Hosting;

/// <summary>
/// Health reports as JSON, in two cuts. <see cref="WriteAsync"/> is what anyone who can reach /health sees (on the
/// gateway, anyone on the network): the overall status and each check's status by name, nothing else, because a
/// check's description or exception text carries internal addresses and error details. <see cref="WriteDetailsAsync"/>
/// adds them, for operators only (the gateway maps it behind the platform-admin key); failing checks are also logged
/// by the health-check service itself (Warning when degraded, Error when unhealthy), which the dashboard shows.
/// </summary>
public static class HealthResponseWriter
{
    public static Task WriteAsync(HttpContext context, HealthReport report)
    {
        context.Response.ContentType = "application/json; charset=utf-8";
        var body = new
        {
            status = report.Status.ToString(),
            checks = report.Entries.ToDictionary(entry => entry.Key, entry => new { status = entry.Value.Status.ToString() }),
        };
        return JsonSerializer.SerializeAsync(context.Response.Body, body, cancellationToken: context.RequestAborted);
    }

    public static Task WriteDetailsAsync(HttpContext context, HealthReport report)
    {
        context.Response.ContentType = "application/json; charset=utf-8";
        var body = new
        {
            status = report.Status.ToString(),
            checks = report.Entries.ToDictionary(
                entry => entry.Key,
                entry => new
                {
                    status = entry.Value.Status.ToString(),
                    description = entry.Value.Description,
                    error = entry.Value.Exception?.Message,
                    duration_ms = Math.Round(entry.Value.Duration.TotalMilliseconds, 1),
                }),
        };
        return JsonSerializer.SerializeAsync(context.Response.Body, body, cancellationToken: context.RequestAborted);
    }
}
