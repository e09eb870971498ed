namespace FineTunePlatform.Contracts;

/// <summary>What a model in the training service's registry is (Model.kind).</summary>
public static class ModelKinds
{
    public const string Base = "base";
    public const string FineTuned = "fine_tuned";
    public const string Checkpoint = "checkpoint";
}

/// <summary>What runs a model (Model.backend): the built-in CPU transformer, an imported open-weight model, or an upstream provider.</summary>
public static class ModelBackends
{
    public const string Local = "local";
    public const string OpenWeights = "open_weights";
    public const string Upstream = "upstream";
}
