namespace FineTunePlatform.Gateway.Grpc;

public sealed class PlatformInfoService() : PlatformInfoServiceBase("gateway");
