using FineTunePlatform.Contracts.Training;
using Grpc.Core;

namespace FineTunePlatform.Gateway.Routing;

/// <summary>The training service's registry as the in-process runtimes ask it: the model as the caller sees it.</summary>
internal static class ModelRegistry
{
    /// <summary>The registry's entry for `model` as `headers`' caller sees it, or null when it does not exist or is not visible.</summary>
    public static async Task<Model?> FindVisibleAsync(this TrainingService.TrainingServiceClient training, string model, Metadata headers, CancellationToken cancellationToken)
    {
        try
        {
            return await training.GetModelAsync(new GetModelRequest { ModelId = model }, headers, cancellationToken: cancellationToken);
        }
        catch (RpcException ex) when (ex.StatusCode == StatusCode.NotFound)
        {
            return null;
        }
    }
}
