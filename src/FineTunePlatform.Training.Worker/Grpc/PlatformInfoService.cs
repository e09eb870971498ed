namespace FineTunePlatform.Training.Worker.Grpc;

public sealed class PlatformInfoService() : PlatformInfoServiceBase("training-worker");
