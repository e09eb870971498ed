using FineTunePlatform.Contracts;
using Grpc.Core;

namespace Microsoft.Extensions.Hosting;

/// <summary>The project and role a gateway-authenticated caller acts as, read from gRPC metadata.</summary>
public sealed record InternalCaller(string ProjectId, string Role, string? KeyId)
{
    /// <summary>The metadata a platform service attaches when it calls another on this caller's behalf (the internal
    /// token is added by every internal gRPC client, see <see cref="InternalTokenClientInterceptor"/>).</summary>
    public Metadata ToMetadata()
    {
        var metadata = new Metadata
        {
            { CallerMetadata.ProjectId, ProjectId },
            { CallerMetadata.Role, Role },
        };
        if (KeyId is not null)
        {
            metadata.Add(CallerMetadata.KeyId, KeyId);
        }

        return metadata;
    }

    /// <summary>Reads the caller a call names, or null for a call the platform makes for itself (trainer workers).</summary>
    internal static InternalCaller? FromHeaders(Metadata headers)
    {
        var projectId = headers.GetValue(CallerMetadata.ProjectId);
        return string.IsNullOrWhiteSpace(projectId)
            ? null
            : new InternalCaller(projectId, headers.GetValue(CallerMetadata.Role) ?? "reader", headers.GetValue(CallerMetadata.KeyId));
    }
}

public static class InternalCallerExtensions
{
    private static readonly object UserStateKey = typeof(InternalCaller);

    /// <summary>
    /// The project a call acts for. <see cref="InternalAuthInterceptor"/> has already proven the call comes from a
    /// platform service; a call that names no project is refused with PermissionDenied.
    /// </summary>
    public static InternalCaller GetCaller(this ServerCallContext context) =>
        context.UserState.TryGetValue(UserStateKey, out var caller) && caller is InternalCaller known
            ? known
            : throw new RpcException(new Status(StatusCode.PermissionDenied, $"metadata '{CallerMetadata.ProjectId}' is required"));

    internal static void SetCaller(this ServerCallContext context, InternalCaller? caller)
    {
        if (caller is not null)
        {
            context.UserState[UserStateKey] = caller;
        }
    }
}
