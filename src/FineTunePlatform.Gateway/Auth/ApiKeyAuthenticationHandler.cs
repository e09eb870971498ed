using System.Security.Claims;
using System.Text.Encodings.Web;
using FineTunePlatform.Gateway.Infrastructure;
using FineTunePlatform.Gateway.OpenAI;
using Microsoft.AspNetCore.Authentication;
using Microsoft.EntityFrameworkCore;
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
    GatewayDbContext db,
    TimeProvider time) : AuthenticationHandler<AuthenticationSchemeOptions>(options, logger, encoder)
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
        var hash = ApiKeyHasher.Hash(presented);
        var key = await db.ApiKeys.AsNoTracking().SingleOrDefaultAsync(candidate => candidate.Hash == hash, Context.RequestAborted);
        var now = time.GetUtcNow();
        if (key is null || !key.IsUsableAt(now))
        {
            var reason = key is null ? "Incorrect API key provided" : key.RevokedAt is not null ? "This API key has been revoked" : "This API key has expired";
            Context.Items[FailureMessageItem] = $"{reason}: {ApiKeyHasher.Redact(presented)}. Create a new key with your project's owner or the platform team.";
            return AuthenticateResult.Fail(reason);
        }

        if (key.LastUsedAt is null || now - key.LastUsedAt > TimeSpan.FromMinutes(1))
        {
            // Coarse on purpose: last-used is for humans auditing keys, not worth a write per request.
            await db.ApiKeys.Where(candidate => candidate.Id == key.Id)
                .ExecuteUpdateAsync(setters => setters.SetProperty(candidate => candidate.LastUsedAt, now), Context.RequestAborted);
        }

        var identity = new ClaimsIdentity(
            [
                new Claim(ProjectIdClaim, key.ProjectId),
                new Claim(RoleClaim, key.Role),
                new Claim(KeyIdClaim, key.Id),
                new Claim(ClaimTypes.Name, key.Name),
            ],
            SchemeName);
        return AuthenticateResult.Success(new AuthenticationTicket(new ClaimsPrincipal(identity), SchemeName));
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
