namespace FineTunePlatform.Datasets.Grpc;

public sealed class PlatformInfoService() : PlatformInfoServiceBase("datasets");
