namespace FineTunePlatform.Training.Grpc;

public sealed class PlatformInfoService() : PlatformInfoServiceBase("training");
