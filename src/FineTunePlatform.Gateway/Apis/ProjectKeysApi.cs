using FineTunePlatform.Gateway.Auth;
using FineTunePlatform.Gateway.Infrastructure;
using FineTunePlatform.Gateway.OpenAI;
using Microsoft.EntityFrameworkCore;
using static FineTunePlatform.Gateway.Apis.AdminApi;

namespace FineTunePlatform.Gateway.Apis;

/// <summary>
/// Our addition: a project's owners manage its own keys (create with a role and expiry, list, revoke) without the
/// platform team. Always the caller's own project.
/// </summary>
public static class ProjectKeysApi
{
    public static RouteGroupBuilder MapProjectKeysApi(this IEndpointRouteBuilder app)
    {
        var keys = app.MapGroup("/v1/project/api_keys").RequireAuthorization(Policies.Owner);
        keys.MapGet("", (HttpContext context, GatewayDbContext db, CancellationToken ct) => ListKeysAsync(context.GetCaller().ProjectId, db, ct));
        keys.MapPost("", async (HttpContext context, GatewayDbContext db, TimeProvider time, CancellationToken ct) =>
            await CreateKeyAsync(context.GetCaller().ProjectId, await RequestBody.ReadAsync<CreateKeyRequest>(context.Request, ct), db, time, ct));
        keys.MapPost("/{keyId}/revoke", (HttpContext context, string keyId, GatewayDbContext db, ApiKeyCache cache, TimeProvider time, CancellationToken ct) =>
            RevokeKeyAsync(context.GetCaller().ProjectId, keyId, db, cache, time, ct));
        return keys;
    }
}
