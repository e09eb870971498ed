using FineTunePlatform.Contracts;
using Grpc.Core;

namespace FineTunePlatform.Training.Worker.Grpc;

public sealed class PlatformInfoService : PlatformInfo.PlatformInfoBase
{
    public override Task<ServiceInfo> GetInfo(GetInfoRequest request, ServerCallContext context) =>
        Task.FromResult(new ServiceInfo
        {
            Service = "training-worker",
            Version = typeof(PlatformInfoService).Assembly.GetName().Version?.ToString() ?? "0.0.0",
        });
}
