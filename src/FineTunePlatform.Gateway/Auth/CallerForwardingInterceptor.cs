using Microsoft.Extensions.Options;

namespace FineTunePlatform.Gateway.Auth;

/// <summary>
/// Attaches the authenticated caller (project, role, key) to every gRPC call the gateway makes to an internal service
/// while serving a request, so no endpoint can forget to scope a call. A call that names its caller explicitly (a gRPC
/// request served by the gateway acts for the caller it was given) is left alone.
/// </summary>
public sealed class CallerForwardingInterceptor(IHttpContextAccessor httpContextAccessor, IOptions<InternalOptions> options)
    : InternalTokenClientInterceptor(options)
{
    protected override InternalCaller AmbientCaller()
    {
        var user = httpContextAccessor.HttpContext?.User;
        return user?.Identity?.IsAuthenticated == true
            ? user.GetCaller()
            : throw new InvalidOperationException("Internal calls are made only on behalf of an authenticated caller.");
    }
}
