using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace Microsoft.Extensions.Hosting;

/// <summary>The platform's own activity source and meter, exported next to the framework's.</summary>
public static class Telemetry
{
    public const string ActivitySourceName = "FineTunePlatform";
    public const string MeterName = "FineTunePlatform";

    public static readonly ActivitySource ActivitySource = new(ActivitySourceName);
    public static readonly Meter Meter = new(MeterName);
}
