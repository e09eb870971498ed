namespace FineTunePlatform.Contracts;

/// <summary>What a model in the training service's registry is (ModelInfo.kind).</summary>
public static class ModelKinds
{
    public const string FineTuned = "fine_tuned";
}
