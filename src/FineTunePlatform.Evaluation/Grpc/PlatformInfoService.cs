namespace FineTunePlatform.Evaluation.Grpc;

public sealed class PlatformInfoService() : PlatformInfoServiceBase("evaluation");
