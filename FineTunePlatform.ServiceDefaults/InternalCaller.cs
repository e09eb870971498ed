using System.Security.Cryptography;
using System.Text;
using FineTunePlatform.Contracts;
using Grpc.Core;
using Microsoft.Extensions.Configuration;

namespace Microsoft.Extensions.Hosting;

/// <summary>The project and role a gateway-authenticated caller acts as, read from gRPC metadata.</summary>
public sealed record InternalCaller(string ProjectId, string Role, string? KeyId);

/// <summary>
/// Internal services trust caller metadata only when the call proves it comes from the gateway (or another
/// platform service) by carrying the shared internal token from `Internal:Token`.
/// </summary>
public static class InternalCallerExtensions
{
    public const string TokenConfigurationKey = "Internal:Token";

    public static string GetInternalToken(this IConfiguration configuration)
    {
        var token = configuration[TokenConfigurationKey];
        if (string.IsNullOrWhiteSpace(token) || token.Length < 16)
        {
            throw new MissingConnectionStringException(
                $"'{TokenConfigurationKey}' is missing or shorter than 16 characters. It is the secret the gateway and the "
                + "internal services share; set it, for example: Internal__Token=\"$(openssl rand -hex 32)\"");
        }

        return token;
    }

    /// <summary>Returns the calling project, or fails the call with Unauthenticated / PermissionDenied.</summary>
    public static InternalCaller RequireCaller(this ServerCallContext context, string internalToken)
    {
        context.RequireInternalToken(internalToken);
        var headers = context.RequestHeaders;
        var projectId = headers.GetValue(CallerMetadata.ProjectId);
        if (string.IsNullOrWhiteSpace(projectId))
        {
            throw new RpcException(new Status(StatusCode.PermissionDenied, $"metadata '{CallerMetadata.ProjectId}' is required"));
        }

        return new InternalCaller(projectId, headers.GetValue(CallerMetadata.Role) ?? "reader", headers.GetValue(CallerMetadata.KeyId));
    }

    /// <summary>For calls platform services make for themselves (trainer workers): the token, no project.</summary>
    public static void RequireInternalToken(this ServerCallContext context, string internalToken)
    {
        var presented = context.RequestHeaders.GetValue(CallerMetadata.InternalToken);
        if (presented is null || !CryptographicOperations.FixedTimeEquals(
                Encoding.UTF8.GetBytes(presented), Encoding.UTF8.GetBytes(internalToken)))
        {
            throw new RpcException(new Status(StatusCode.Unauthenticated, "internal token missing or wrong"));
        }
    }

    /// <summary>The metadata a platform service attaches when it calls another on a caller's behalf.</summary>
    public static Metadata ToMetadata(this InternalCaller caller, string internalToken)
    {
        var metadata = new Metadata
        {
            { CallerMetadata.InternalToken, internalToken },
            { CallerMetadata.ProjectId, caller.ProjectId },
            { CallerMetadata.Role, caller.Role },
        };
        if (caller.KeyId is not null)
        {
            metadata.Add(CallerMetadata.KeyId, caller.KeyId);
        }

        return metadata;
    }
}
