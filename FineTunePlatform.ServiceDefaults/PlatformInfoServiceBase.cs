using FineTunePlatform.Contracts;
using Grpc.Core;

namespace Microsoft.Extensions.Hosting;

/// <summary>
/// Every service answers PlatformInfo.GetInfo with its name and version, so a deployment's gRPC wiring can be checked
/// end to end. Each service derives a one-line PlatformInfoService naming itself (which is also the public type tests
/// host the service by).
/// </summary>
public abstract class PlatformInfoServiceBase(string serviceName) : PlatformInfo.PlatformInfoBase
{
    public override Task<ServiceInfo> GetInfo(GetInfoRequest request, ServerCallContext context) =>
        Task.FromResult(new ServiceInfo
        {
            Service = serviceName,
            Version = GetType().Assembly.GetName().Version?.ToString() ?? "0.0.0",
        });
}
