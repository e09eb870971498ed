using System.Security.Claims;
using System.Text.Encodings.Web;
using FineTunePlatform.Gateway.OpenAI;
using Microsoft.AspNetCore.Authentication;
using Microsoft.Extensions.Options;

namespace FineTunePlatform.Gateway.Auth;

/// <summary>
/// Authenticates `Authorization: Bearer sk-ft-...` against the stored key hashes and answers failures the way
/// OpenAI does (401 with its error shape), so SDK clients surface the same messages they would against OpenAI.
/// </summary>
public sealed class ApiKeyAuthenticationHandler(
    IOptionsMonitor<AuthenticationSchemeOptions> options,
    ILoggerFactory logger,
    UrlEncoder encoder,
    ApiKeyCache keys) : AuthenticationHandler<AuthenticationSchemeOptions>(options, logger, encoder)
{
    public const string SchemeName = "ApiKey";
    public const string ProjectIdClaim = "project_id";
    public const string RoleClaim = "role";
    public const string KeyIdClaim = "key_id";

    private const string FailureMessageItem = "ft-auth-failure";

    protected override async Task<AuthenticateResult> HandleAuthenticateAsync()
    {
        var header = Request.Headers.Authorization.ToString();
        if (string.IsNullOrEmpty(header))
        {
            return AuthenticateResult.NoResult();
        }

        const string bearer = "Bearer ";
        var presented = header.StartsWith(bearer, StringComparison.OrdinalIgnoreCase) ? header[bearer.Length..].Trim() : header.Trim();
        var (identity, failure) = await keys.ResolveAsync(ApiKeyHasher.Hash(presented), Context.RequestAborted);
        if (identity is null)
        {
            Context.Items[FailureMessageItem] = $"{failure}: {ApiKeyHasher.Redact(presented)}. Create a new key with your project's owner or the platform team.";
            return AuthenticateResult.Fail(failure!);
        }

        Context.Features.Set(identity);
        var claims = new ClaimsIdentity(
            [
                new Claim(ProjectIdClaim, identity.ProjectId),
                new Claim(RoleClaim, identity.Role),
                new Claim(KeyIdClaim, identity.KeyId),
                new Claim(ClaimTypes.Name, identity.Name),
            ],
            SchemeName);
        return AuthenticateResult.Success(new AuthenticationTicket(new ClaimsPrincipal(claims), SchemeName));
    }

    protected override Task HandleChallengeAsync(AuthenticationProperties properties)
    {
        var message = Context.Items[FailureMessageItem] as string;
        var result = message is null
            ? OpenAIErrors.Unauthorized("You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).")
            : OpenAIErrors.Unauthorized(message, "invalid_api_key");
        return result.ExecuteAsync(Context);
    }

    protected override Task HandleForbiddenAsync(AuthenticationProperties properties) =>
        OpenAIErrors.Forbidden(
            $"You have insufficient permissions for this operation: your key's role is '{Context.User.FindFirst(RoleClaim)?.Value}'.",
            "insufficient_permissions").ExecuteAsync(Context);
}
