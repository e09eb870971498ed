using Grpc.Core;

namespace FineTunePlatform.Gateway.Auth;

/// <summary>
/// Attaches the authenticated caller (project, role, key) and the internal token to every gRPC call the gateway
/// makes to an internal service while serving a request, so no endpoint can forget to scope a call. A call that
/// names its caller explicitly (a gRPC request served by the gateway acts for the caller it was given) is left alone.
/// </summary>
public sealed class CallerForwardingInterceptor(IHttpContextAccessor httpContextAccessor, IConfiguration configuration) : InternalMetadataInterceptor
{
    private readonly string _internalToken = configuration.GetInternalToken();

    protected override void AddMetadata(Metadata headers)
    {
        var user = httpContextAccessor.HttpContext?.User;
        if (user?.Identity?.IsAuthenticated != true)
        {
            throw new InvalidOperationException("Internal calls are made only on behalf of an authenticated caller.");
        }

        foreach (var entry in user.GetCaller().ToMetadata(_internalToken))
        {
            headers.Add(entry);
        }
    }
}
