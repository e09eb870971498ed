using System.Security.Claims;

namespace FineTunePlatform.Gateway.Auth;

public static class CallerExtensions
{
    /// <summary>The authenticated caller of this request; endpoints reach it only behind an authorization policy.</summary>
    public static InternalCaller GetCaller(this HttpContext context) => context.User.GetCaller();

    public static InternalCaller GetCaller(this ClaimsPrincipal user) => new(
        user.FindFirst(ApiKeyAuthenticationHandler.ProjectIdClaim)?.Value
            ?? throw new InvalidOperationException("The endpoint is not behind an authorization policy."),
        user.FindFirst(ApiKeyAuthenticationHandler.RoleClaim)!.Value,
        user.FindFirst(ApiKeyAuthenticationHandler.KeyIdClaim)?.Value);
}
