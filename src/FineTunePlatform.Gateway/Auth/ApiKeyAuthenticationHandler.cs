using System.Security.Claims;
using System.Text.Encodings.Web;
using FineTunePlatform.Gateway.OpenAI;
using Microsoft.AspNetCore.Authentication;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace FineTunePlatform.Gateway.Auth;

/// <summary>
/// Authenticates `Authorization: Bearer sk-ft-...` against the stored key hashes and answers failures the way
/// OpenAI does (401 with its error shape), so SDK clients surface the same messages they would against OpenAI.
/// Failures are counted per client address (<see cref="AuthenticationFailures"/>): logged as one summary line per
/// address and interval, and answered 429 without a key lookup past a few per second.
/// </summary>
public sealed class ApiKeyAuthenticationHandler(
    IOptionsMonitor<AuthenticationSchemeOptions> options,
    UrlEncoder encoder,
    ApiKeyCache keys,
    AuthenticationFailures failures)
    // The base class logs two Information lines per failed request ("was not authenticated", "was challenged"), which
    // anonymous traffic can turn into gigabytes; failures are logged by AuthenticationFailures instead.
    : AuthenticationHandler<AuthenticationSchemeOptions>(options, NullLoggerFactory.Instance, encoder)
{
    public const string SchemeName = "ApiKey";
    public const string ProjectIdClaim = "project_id";
    public const string RoleClaim = "role";
    public const string KeyIdClaim = "key_id";

    private const string FailureMessageItem = "ft-auth-failure";
    private const string ThrottledItem = "ft-auth-throttled";
    private const string BearerPrefix = "Bearer ";

    private const string NoKeyMessage = "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).";

    protected override async Task<AuthenticateResult> HandleAuthenticateAsync()
    {
        var header = Request.Headers.Authorization.ToString();
        if (string.IsNullOrEmpty(header))
        {
            return AuthenticateResult.NoResult();
        }

        var address = Context.Connection.RemoteIpAddress;
        // Like OpenAI: a key sent without the Bearer scheme is no key at all.
        if (!header.StartsWith(BearerPrefix, StringComparison.OrdinalIgnoreCase))
        {
            failures.Record(address, "Authorization header without the Bearer scheme");
            Context.Items[FailureMessageItem] = NoKeyMessage;
            return AuthenticateResult.Fail("no Bearer scheme");
        }

        var hash = ApiKeyHasher.Hash(header[BearerPrefix.Length..].Trim());
        KeyIdentity? identity;
        if (failures.IsThrottled(address))
        {
            identity = keys.TryGetValid(hash);
            if (identity is null)
            {
                Context.Items[ThrottledItem] = true;
                return AuthenticateResult.Fail("throttled");
            }
        }
        else
        {
            (identity, var failure) = await keys.ResolveAsync(hash, Context.RequestAborted);
            if (identity is null)
            {
                failures.Record(address, failure!);
                Context.Items[FailureMessageItem] = $"{failure}: {ApiKeyHasher.Redact(header[BearerPrefix.Length..].Trim())}. Create a new key with your project's owner or the platform team.";
                return AuthenticateResult.Fail(failure!);
            }
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
        if (Context.Items.ContainsKey(ThrottledItem))
        {
            Response.Headers.RetryAfter = "1";
            return OpenAIErrors.Result(StatusCodes.Status429TooManyRequests,
                "Too many requests with invalid API keys from your address; retry in a second with a valid key.",
                OpenAIErrors.RateLimitError, null, "too_many_authentication_failures").ExecuteAsync(Context);
        }

        var message = Context.Items[FailureMessageItem] as string;
        var result = message is null or NoKeyMessage
            ? OpenAIErrors.Unauthorized(NoKeyMessage)
            : OpenAIErrors.Unauthorized(message, "invalid_api_key");
        return result.ExecuteAsync(Context);
    }

    protected override Task HandleForbiddenAsync(AuthenticationProperties properties) =>
        OpenAIErrors.Forbidden(
            $"You have insufficient permissions for this operation: your key's role is '{Context.User.FindFirst(RoleClaim)?.Value}'.",
            "insufficient_permissions").ExecuteAsync(Context);
}
