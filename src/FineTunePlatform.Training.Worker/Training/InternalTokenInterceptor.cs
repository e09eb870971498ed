using FineTunePlatform.Contracts;
using Grpc.Core;

namespace FineTunePlatform.Training.Worker.Training;

/// <summary>Workers act for the platform, not for a project: their calls to the training service carry the token only.</summary>
public sealed class InternalTokenInterceptor(IConfiguration configuration) : InternalMetadataInterceptor
{
    private readonly string _token = configuration.GetInternalToken();

    protected override void AddMetadata(Metadata headers) => headers.Add(CallerMetadata.InternalToken, _token);
}
